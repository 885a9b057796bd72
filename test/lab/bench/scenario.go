// Package bench is the real-request benchmark on the lab (make bench-lab,
// docs/lab.md): Traefik gateways at every site, Prometheus scraping them,
// `ning discover` publishing the traffic it reads, and an open-loop load
// generator in every site's network namespace whose response times compare
// ning's placement with the default scheduler's and the exact optimum's.
package bench

import (
	"fmt"
	"math"
	"os"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Scenario is a scenario file: per-site request rates that change at given
// times, and sites powered off and on.
type Scenario struct {
	Name string `json:"name"`
	// Duration bounds the load.
	Duration metav1.Duration `json:"duration"`
	// Phases set every site's rate (requests/s per method) from At on; the
	// first starts at 0.
	Phases []Phase `json:"phases"`
	// Events power sites off (stop) and on (start) at a time.
	Events []Event `json:"events,omitempty"`
}

// Phase is the per-site rates from At on.
type Phase struct {
	At    metav1.Duration    `json:"at"`
	Rates map[string]float64 `json:"rates"`
}

// Event is a site powered off or on at At.
type Event struct {
	At     metav1.Duration `json:"at"`
	Action string          `json:"action"` // stop or start
	Site   string          `json:"site"`
}

// LoadScenario reads and checks a scenario file against the lab's sites.
func LoadScenario(path string, sites []string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Scenario
	if err := yaml.UnmarshalStrict(data, &s); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	if err := s.validate(sites); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return &s, nil
}

func (s *Scenario) validate(sites []string) error {
	known := map[string]bool{}
	for _, n := range sites {
		known[n] = true
	}
	if s.Name == "" {
		return fmt.Errorf("no name")
	}
	if s.Duration.Duration <= 0 || s.Duration.Duration > time.Hour {
		return fmt.Errorf("duration %s: want more than 0 and at most 1h", s.Duration.Duration)
	}
	if len(s.Phases) == 0 || s.Phases[0].At.Duration != 0 {
		return fmt.Errorf("the first phase must start at 0s")
	}
	for i, p := range s.Phases {
		if i > 0 && p.At.Duration <= s.Phases[i-1].At.Duration {
			return fmt.Errorf("phase %d starts at %s, not after phase %d", i, p.At.Duration, i-1)
		}
		for site, r := range p.Rates {
			if !known[site] {
				return fmt.Errorf("phase %d: unknown site %q (the lab has %v)", i, site, sites)
			}
			if math.IsNaN(r) || r < 0 || r > 1000 {
				return fmt.Errorf("phase %d: site %s rate %v: want 0..1000 requests/s", i, site, r)
			}
		}
	}
	for i, e := range s.Events {
		if !known[e.Site] {
			return fmt.Errorf("event %d: unknown site %q", i, e.Site)
		}
		if e.Action != "stop" && e.Action != "start" {
			return fmt.Errorf("event %d: action %q: want stop or start", i, e.Action)
		}
		if e.At.Duration < 0 || e.At.Duration >= s.Duration.Duration {
			return fmt.Errorf("event %d at %s: outside the run (%s)", i, e.At.Duration, s.Duration.Duration)
		}
	}
	return nil
}

// Rate is site's rate at t.
func (s *Scenario) Rate(site string, t time.Duration) float64 {
	r := 0.0
	for _, p := range s.Phases {
		if p.At.Duration <= t {
			r = p.Rates[site]
		}
	}
	return r
}

// Sites are the sites with traffic in some phase, sorted.
func (s *Scenario) Sites() []string {
	seen := map[string]bool{}
	for _, p := range s.Phases {
		for site, r := range p.Rates {
			if r > 0 {
				seen[site] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Shift is the start of the second phase (0: the traffic never shifts).
func (s *Scenario) Shift() time.Duration {
	if len(s.Phases) < 2 {
		return 0
	}
	return s.Phases[1].At.Duration
}
