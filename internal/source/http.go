package source

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/topology"
)

// Reasons an HTTP poll is rejected, beyond those of the MQTT source.
const (
	// ReasonFetch: the request failed or did not answer 200.
	ReasonFetch = "fetch"
	// ReasonDuplicate: one report names the same peer twice.
	ReasonDuplicate = "duplicate"
)

// HTTPConfig is what an HTTP-pulled source needs.
type HTTPConfig struct {
	// URL is fetched with GET every Interval.
	URL string
	// Interval between polls (default 30 s); Timeout bounds one (default 10 s).
	Interval, Timeout time.Duration
	// MaxBytes bounds a response body; zero means DefaultMaxPayload.
	MaxBytes int
	// Client is the HTTP client (default http.DefaultClient's transport with Timeout).
	Client *http.Client
}

func (c HTTPConfig) withDefaults() HTTPConfig {
	if c.Interval <= 0 {
		c.Interval = 30 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxPayload
	}
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	return c
}

// fetch GETs url; a body over maxBytes is a too_large rejection, a failed
// request or a status other than 200 a fetch rejection.
func fetch(ctx context.Context, c HTTPConfig) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return nil, &topology.RejectError{Reason: ReasonFetch, Detail: fmt.Sprintf("request for %s: %v", c.URL, err)}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Client.Do(req)
	if err != nil {
		return nil, &topology.RejectError{Reason: ReasonFetch, Detail: fmt.Sprintf("GET %s: %v", c.URL, err)}
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, &topology.RejectError{Reason: ReasonFetch, Detail: fmt.Sprintf("GET %s: %s", c.URL, resp.Status)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.MaxBytes)+1))
	if err != nil {
		return nil, &topology.RejectError{Reason: ReasonFetch, Detail: fmt.Sprintf("GET %s: reading body: %v", c.URL, err)}
	}
	if len(body) > c.MaxBytes {
		return nil, &topology.RejectError{Reason: ReasonTooLarge, Detail: fmt.Sprintf("GET %s: body over the %d byte limit", c.URL, c.MaxBytes)}
	}
	return body, nil
}

// Poller fetches one HTTP endpoint every interval, reads the RTTs in the
// answer and writes them to the store, all or none. Each failed poll is
// counted by its reason and logged, and the loop goes on. NewGoldpinger and
// NewScores make one.
type Poller struct {
	name    string
	http    HTTPConfig
	sites   func() Sites
	store   *topology.Store
	clock   clock.PassiveClock
	metrics *Metrics
	log     *slog.Logger
	observe observeFunc
}

// observeFunc decodes a body of at most maxBytes and returns its samples,
// mapped to sites, and how many peers it could not map.
type observeFunc func(body []byte, maxBytes int, sites Sites, at time.Time) ([]topology.RTTSample, int, error)

func newPoller(name string, observe observeFunc, store *topology.Store, cfg HTTPConfig, sites Sites, clk clock.PassiveClock, m *Metrics, log *slog.Logger) *Poller {
	return &Poller{name: name, http: cfg.withDefaults(), sites: func() Sites { return sites }, store: store, clock: clk, metrics: m, log: log, observe: observe}
}

// FollowSites makes every later poll map peers with what sites returns then,
// instead of the fixed Sites given to the constructor: nodes that join the
// cluster afterwards are placed. Call it before Run.
func (p *Poller) FollowSites(sites func() Sites) { p.sites = sites }

// Poll fetches and stores once; a rejection is counted and returned.
func (p *Poller) Poll(ctx context.Context) error {
	err := p.poll(ctx)
	if err == nil {
		p.metrics.accepted.WithLabelValues(p.name).Inc()
		return nil
	}
	reason := rejectReason(err)
	p.metrics.rejected.WithLabelValues(reason).Inc()
	return fmt.Errorf("%s: %w", p.name, err)
}

// Run polls every interval until ctx ends; it returns nil.
func (p *Poller) Run(ctx context.Context) error {
	t := time.NewTicker(p.http.Interval)
	defer t.Stop()
	for {
		if err := p.Poll(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("poll rejected", "source", p.name, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (p *Poller) poll(ctx context.Context) error {
	body, err := fetch(ctx, p.http)
	if err != nil {
		return err
	}
	samples, unmapped, err := p.observe(body, p.http.MaxBytes, p.sites(), p.clock.Now())
	if err != nil {
		return err
	}
	p.metrics.unmapped.WithLabelValues(p.name).Add(float64(unmapped))
	return storeSamples(p.store, samples)
}

// Sites maps what other systems call a peer (a node name, a node's IP) to
// ning's sites.
type Sites struct {
	// NodeSite is node name -> site (topology.SiteOf of the node's labels).
	NodeSite map[string]string
	// IPNode is node or pod IP -> node name (a node's InternalIP, a pod's IP).
	IPNode map[string]string
}

// ofIP returns the site of an address: through IPNode, then NodeSite.
func (s Sites) ofIP(ips ...string) (string, bool) {
	for _, ip := range ips {
		if ip == "" {
			continue
		}
		if node, ok := s.IPNode[ip]; ok {
			if site, ok := s.NodeSite[node]; ok {
				return site, true
			}
		}
	}
	return "", false
}

// ofName returns the site of a node name, or the name itself when it is
// already a site's name.
func (s Sites) ofName(name string) (string, bool) {
	if site, ok := s.NodeSite[name]; ok {
		return site, true
	}
	for _, site := range s.NodeSite {
		if site == name {
			return site, true
		}
	}
	return "", false
}

// SitesFromNodes maps every node's addresses (InternalIP, ExternalIP) to the
// node and the node to its site (label key; a node without it is its own
// site). Goldpinger names each pod's host IP, so this is enough to place
// pods on sites without listing pods.
func SitesFromNodes(nodes []v1.Node, key string) Sites {
	s := Sites{NodeSite: map[string]string{}, IPNode: map[string]string{}}
	for i := range nodes {
		n := &nodes[i]
		s.NodeSite[n.Name] = topology.SiteOf(n.Name, n.Labels, key)
		for _, a := range n.Status.Addresses {
			if (a.Type == v1.NodeInternalIP || a.Type == v1.NodeExternalIP) && a.Address != "" {
				s.IPNode[a.Address] = n.Name
			}
		}
	}
	return s
}
