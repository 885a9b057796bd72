package probe

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	probing "github.com/prometheus-community/pro-bing"
)

// probeICMP sends Count echo requests Interval apart and times the replies.
// The run ends when every request is answered, or Timeout after the last one
// went out. It is not cut at (Count-1) × Interval + Timeout: on a loaded
// machine the ticker that paces the requests falls behind, and a run cut
// there ends with the last requests in flight and counts them lost (a 60 ms
// link lost 6 of 400 that way). A run that ends anyway (ctx, or the bound of
// twice the nominal time) does not count the requests it sent less than
// Timeout before: they are neither answered nor lost.
func probeICMP(ctx context.Context, host string, privileged bool, o Options) ([]time.Duration, int, error) {
	pinger := probing.New(host)
	pinger.SetPrivileged(privileged)
	pinger.Count = o.Count
	pinger.Interval = o.Interval
	pinger.Timeout = 2*time.Duration(o.Count-1)*o.Interval + o.Timeout
	if err := pinger.Resolve(); err != nil {
		return nil, 0, fmt.Errorf("resolving %s: %w", host, err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	// OnSend and OnRecv run on the pinger's loop goroutine, and Run returns
	// after it: the map and the timer need no lock.
	inFlight := map[int]time.Time{}
	sends := 0
	var lastTimeout *time.Timer
	pinger.OnSend = func(p *probing.Packet) {
		inFlight[p.Seq] = time.Now()
		if sends++; sends == o.Count {
			lastTimeout = time.AfterFunc(o.Timeout, stop)
		}
	}
	pinger.OnRecv = func(p *probing.Packet) { delete(inFlight, p.Seq) }
	err := pinger.RunWithContext(runCtx)
	end := time.Now()
	if lastTimeout != nil {
		lastTimeout.Stop()
	}
	if err != nil && (!errors.Is(err, context.Canceled) || ctx.Err() != nil) {
		if isPermission(err) {
			return nil, 0, fmt.Errorf("%w: %v", errUnavailable, err)
		}
		return nil, 0, fmt.Errorf("icmp to %s: %w", host, err)
	}
	st := pinger.Statistics()
	return st.Rtts, st.PacketsSent - unsettled(inFlight, end, o.Timeout), nil
}

// unsettled counts the unanswered probes, by send time, that had less than
// timeout for their reply when the run ended.
func unsettled(unanswered map[int]time.Time, end time.Time, timeout time.Duration) int {
	n := 0
	for _, sent := range unanswered {
		if end.Sub(sent) < timeout {
			n++
		}
	}
	return n
}

func isPermission(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(err.Error(), "operation not permitted") || strings.Contains(err.Error(), "permission denied")
}

// probeUDPEcho sends Count datagrams, each tagged with a random nonce and its
// sequence number, to an echo server and times the matching replies.
func probeUDPEcho(ctx context.Context, host string, port int, o Options) ([]time.Duration, int, error) {
	if port == 0 {
		return nil, 0, fmt.Errorf("%w: no UDP port for %s", errUnavailable, host)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, 0, fmt.Errorf("udp echo to %s: %w", host, err)
	}
	defer func() { _ = conn.Close() }()
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	var rtts []time.Duration
	sent := 0
	buf := make([]byte, 64)
	for i := range o.Count {
		if i > 0 {
			if err := sleep(ctx, o.Interval); err != nil {
				return rtts, sent, nil
			}
		}
		msg := fmt.Appendf(append([]byte("ning"), nonce...), "%08d", i)
		start := time.Now()
		if _, err := conn.Write(msg); err != nil {
			sent++
			continue
		}
		sent++
		deadline := start.Add(o.Timeout)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		_ = conn.SetReadDeadline(deadline)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				break // timeout or ICMP unreachable: lost
			}
			if string(buf[:n]) == string(msg) {
				rtts = append(rtts, time.Since(start))
				break
			}
		}
	}
	return rtts, sent, nil
}

// probeTCP times Count TCP connects. A refused connection (RST) is a reply too:
// the target's kernel answered in one round trip.
func probeTCP(ctx context.Context, host string, port int, o Options) ([]time.Duration, int, error) {
	if port == 0 {
		return nil, 0, fmt.Errorf("%w: no TCP port for %s", errUnavailable, host)
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	var rtts []time.Duration
	sent := 0
	for i := range o.Count {
		if i > 0 {
			if err := sleep(ctx, o.Interval); err != nil {
				return rtts, sent, nil
			}
		}
		d := net.Dialer{Timeout: o.Timeout}
		start := time.Now()
		c, err := d.DialContext(ctx, "tcp", addr)
		el := time.Since(start)
		sent++
		switch {
		case err == nil:
			rtts = append(rtts, el)
			_ = c.Close()
		case errors.Is(err, syscall.ECONNREFUSED):
			rtts = append(rtts, el)
		}
	}
	return rtts, sent, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
