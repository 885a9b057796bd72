package lab

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/ning-edge/ning/internal/netem"
)

// shaper runs the NFQUEUE delayers of every site namespace and restarts one
// with a new delay when a link changes.
type shaper struct {
	mu      sync.Mutex
	running map[string]*delayerRun // netns/queue -> its delayer
	seed    uint64
	errs    chan error
}

type delayerRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	delay  time.Duration
}

func newShaper() *shaper {
	return &shaper{running: map[string]*delayerRun{}, errs: make(chan error, 64)}
}

// set (re)starts the delayer of queue num in netns with a one-way delay.
// Between the old delayer's exit and the new one's bind the kernel drops
// the queue's packets (a few microseconds), as a link being reconfigured would.
func (s *shaper) set(netns string, num uint16, oneWay time.Duration) error {
	key := fmt.Sprintf("%s/%d", netns, num)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.running[key]; old != nil {
		old.cancel()
		<-old.done
		delete(s.running, key)
	}
	f, err := os.Open("/var/run/netns/" + netns)
	if err != nil {
		return fmt.Errorf("opening namespace %s: %w", netns, err)
	}
	s.seed++
	d, err := netem.NewDelayer(int(f.Fd()), num, netem.Shape{Delay: oneWay}, s.seed)
	_ = f.Close()
	if err != nil {
		return fmt.Errorf("delayer %s: %w", key, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &delayerRun{cancel: cancel, done: make(chan struct{}), delay: oneWay}
	s.running[key] = r
	go func() {
		defer close(r.done)
		if err := d.Run(ctx); err != nil {
			select {
			case s.errs <- fmt.Errorf("delayer %s: %w", key, err):
			default:
			}
		}
	}()
	return nil
}

// stop ends every delayer.
func (s *shaper) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, r := range s.running {
		r.cancel()
		<-r.done
		delete(s.running, k)
	}
}

// shapeSite starts every delayer of site i: half of each RTT one way.
func (s *shaper) shapeSite(p *Plan, i int) error {
	site := p.Sites[i]
	for j, o := range p.Sites {
		if j == i {
			continue
		}
		if err := s.set(site.Netns(), queueTo(o.Index), p.RTT[i][j]/2); err != nil {
			return err
		}
	}
	if err := s.set(site.Netns(), queueCtlOut, p.ControlRTT[i]/2); err != nil {
		return err
	}
	return s.set(site.Netns(), queueCtlIn, p.ControlRTT[i]/2)
}
