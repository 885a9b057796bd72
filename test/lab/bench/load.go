package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// LoadConfig is one site's load generator: open-loop requests to the site's
// gateway, one independent Poisson stream per target at the scenario's rate.
type LoadConfig struct {
	Scenario *Scenario `json:"scenario"`
	Site     string    `json:"site"`
	// URL is the site's gateway (its Traefik's web entrypoint).
	URL string `json:"url"`
	// Targets name the streams; each is sent with Host: Hosts[i].
	Targets []string `json:"targets"`
	Hosts   []string `json:"hosts"`
	Seed    uint64   `json:"seed"`
	// Timeout bounds one request: beyond it the request is an error.
	Timeout time.Duration `json:"timeout"`
	// Start is when the schedule's time 0 is (all sites share it).
	Start time.Time `json:"start"`
}

// Result is one request.
type Result struct {
	Target string `json:"target"`
	Site   string `json:"site"`
	// At is the scheduled send time, seconds from the start.
	At float64 `json:"at"`
	// Ms is the response time from the scheduled send time (so a late
	// send counts against the response, not against the schedule).
	Ms float64 `json:"ms"`
	// Err is empty for a 200 response.
	Err string `json:"err,omitempty"`
	// Node served the request (from the workload's answer).
	Node string `json:"node,omitempty"`
}

// Arrival is one scheduled request.
type Arrival struct {
	at     time.Duration
	target int
}

// At is the arrival's time from the start.
func (a Arrival) At() time.Duration { return a.at }

// Target is the index of the target the arrival is sent to.
func (a Arrival) Target() int { return a.target }

// Schedule is the fixed send schedule: for every target, Poisson arrivals
// at the scenario's piecewise-constant rate for site, each target from its
// own seeded stream; sorted by time. It is computed before the first send,
// so nothing the responses do changes it.
func Schedule(s *Scenario, site string, targets int, seed uint64) []Arrival {
	var out []Arrival
	end := s.Duration.Duration
	for k := 0; k < targets; k++ {
		rng := rand.New(rand.NewPCG(seed, uint64(k)<<32|uint64(len(site))))
		for i, p := range s.Phases {
			to := end
			if i+1 < len(s.Phases) {
				to = min(s.Phases[i+1].At.Duration, end)
			}
			r := p.Rates[site]
			if r <= 0 {
				continue
			}
			t := p.At.Duration
			for {
				t += time.Duration(rng.ExpFloat64() / r * float64(time.Second))
				if t >= to {
					break
				}
				out = append(out, Arrival{at: t, target: k})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].at < out[j].at })
	return out
}

// Load runs one site's generator and writes one JSON Result per line to w.
// Every request runs in its own goroutine at its scheduled time (open
// loop: a slow response delays no later request); connections are kept
// alive, as a browser's would be, with no limit on how many are open.
func Load(ctx context.Context, c LoadConfig, w io.Writer) error {
	if len(c.Targets) != len(c.Hosts) || len(c.Targets) == 0 {
		return fmt.Errorf("load: %d targets, %d hosts", len(c.Targets), len(c.Hosts))
	}
	sched := Schedule(c.Scenario, c.Site, len(c.Targets), c.Seed)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: c.Timeout}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 1000,
		IdleConnTimeout:     90 * time.Second,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: c.Timeout}
	results := make(chan Result, 1024)
	var wg sync.WaitGroup
	done := make(chan error, 1)
	go func() {
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		var err error
		for r := range results {
			if e := enc.Encode(r); e != nil && err == nil {
				err = e
			}
		}
		if e := bw.Flush(); e != nil && err == nil {
			err = e
		}
		done <- err
	}()
	for _, a := range sched {
		due := c.Start.Add(a.at)
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(a Arrival, due time.Time) {
			defer wg.Done()
			results <- send(ctx, client, c, a, due)
		}(a, due)
	}
	wg.Wait()
	close(results)
	return <-done
}

func send(ctx context.Context, client *http.Client, c LoadConfig, a Arrival, due time.Time) Result {
	r := Result{Target: c.Targets[a.target], Site: c.Site, At: a.at.Seconds()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	req.Host = c.Hosts[a.target]
	resp, err := client.Do(req)
	if err == nil {
		var body []byte
		body, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		r.Node = nodeOf(string(body))
	}
	r.Ms = float64(time.Since(due).Microseconds()) / 1000
	if err != nil {
		r.Err = errClass(err)
	}
	return r
}

// nodeOf reads node=NAME from the workload's answer.
func nodeOf(body string) string {
	for _, f := range strings.Fields(body) {
		if n, ok := strings.CutPrefix(f, "node="); ok {
			return n
		}
	}
	return ""
}

// errClass shortens an error to its kind (a timeout, a refused connection,
// an HTTP status), so that errors can be counted by kind.
func errClass(err error) string {
	s := err.Error()
	for _, k := range []string{"Client.Timeout", "deadline exceeded", "connection refused", "connection reset", "EOF", "no route to host", "HTTP "} {
		if i := strings.Index(s, k); i >= 0 {
			if k == "HTTP " {
				return s[i:]
			}
			return k
		}
	}
	return s
}

// ReadResults reads a generator's output.
func ReadResults(path string) ([]Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read only
	var out []Result
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		var r Result
		if err := dec.Decode(&r); err == io.EOF {
			return out, nil
		} else if err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, r)
	}
}
