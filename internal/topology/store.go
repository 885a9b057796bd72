package topology

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Limits on what a Store accepts. A value outside them is rejected, never stored.
const (
	// MaxRTTMs is the largest round-trip time accepted: one minute.
	MaxRTTMs = 60_000.0
	// DefaultAlpha is the weight of a new observation in the EWMA.
	DefaultAlpha = 0.3
	// DefaultTTL is how long a measurement stays valid without a new one.
	DefaultTTL = 2 * time.Minute
	// DefaultMaxFutureSkew is how far in the future an observation's timestamp
	// may lie (clock skew between a prober and this process) before it is rejected.
	DefaultMaxFutureSkew = 10 * time.Second
	// DefaultMaxSites is how many sites a store holds data for at most: its
	// RTT matrix, 2,000 x 2,000 float64s, is 32 MB.
	DefaultMaxSites = 2000
)

// Reasons an observation is rejected; they are the values of the reason label of
// ning's rejection metrics.
const (
	ReasonBadSite   = "bad_site"
	ReasonBadRTT    = "bad_rtt"
	ReasonBadLoss   = "bad_loss"
	ReasonBadLoad   = "bad_load"
	ReasonBadRate   = "bad_rate"
	ReasonFutureTS  = "future_timestamp"
	ReasonMissingTS = "missing_timestamp"
	// ReasonBadTS is a timestamp that contradicts another of the same
	// observation (a round that started after it finished).
	ReasonBadTS = "bad_timestamp"
	// ReasonTooManySites is an observation naming a new site when the store
	// already holds Config.MaxSites.
	ReasonTooManySites = "too_many_sites"
)

// RejectError says why an observation was not stored.
type RejectError struct {
	Reason string // one of the Reason constants
	Detail string
}

func (e *RejectError) Error() string { return e.Detail }

func reject(reason, format string, args ...any) error {
	return &RejectError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Config tunes a Store. The zero value of a field means its default.
type Config struct {
	// Alpha is the EWMA weight of a new observation, in (0, 1].
	Alpha float64
	// TTL is how long a measured RTT, load or traffic figure stays valid.
	TTL time.Duration
	// MaxFutureSkew bounds how far ahead of this clock an observation may be stamped.
	MaxFutureSkew time.Duration
	// MaxSites bounds the sites the store holds data for; an observation
	// naming a new site past it is rejected (ReasonTooManySites). The
	// extender also builds no RTT matrix over more sites than this.
	MaxSites int
}

func (c Config) withDefaults() Config {
	if c.Alpha <= 0 || c.Alpha > 1 || math.IsNaN(c.Alpha) {
		c.Alpha = DefaultAlpha
	}
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.MaxFutureSkew <= 0 {
		c.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if c.MaxSites <= 0 {
		c.MaxSites = DefaultMaxSites
	}
	return c
}

// RTTSample is one measurement of the round-trip time from one site to another:
// Sent probes of which Received came back, with MeanMs their mean RTT.
type RTTSample struct {
	From, To string
	MeanMs   float64
	Sent     int
	Received int
	At       time.Time
	// Reached is the earliest time the replies can have come back (the
	// probes went out then): the sign of To that the sample gives, since a
	// site that went dark while it was measured answered before it did.
	// Zero is At.
	Reached time.Time
}

// Link is what the store knows of one ordered site pair.
type Link struct {
	// RTTMs is the EWMA of the measured mean RTT in milliseconds.
	RTTMs float64
	// Loss is the EWMA of the fraction of probes lost, 0..1.
	Loss float64
	// Observations counts the measurements folded into RTTMs.
	Observations int64
	// Updated is when RTTMs was last measured. A link whose probes are all lost
	// keeps its old Updated, so it goes stale and its RTT becomes unknown.
	Updated time.Time
}

// Pressure is one PSI resource line: the share of time, in percent (0..100),
// that some or all tasks were stalled over the last 10 seconds.
type Pressure struct {
	Some, Full float64
}

// PSI is a node's pressure stall information.
type PSI struct {
	CPU, Memory, IO Pressure
}

// Load is the load on one node.
type Load struct {
	// CPU is the CPU utilisation, 0..1, higher is busier (an EWMA in the store).
	CPU float64
	PSI PSI
	// Updated is when the load was last reported.
	Updated time.Time
}

// Store is the single in-process view that latency, load and traffic sources
// write to and that the placement code reads. It is safe for concurrent use.
type Store struct {
	cfg   Config
	clock clock.PassiveClock

	mu    sync.RWMutex
	links map[[2]string]*Link
	// measuredBy is, per site, the sites that measured a link to it:
	// CheckRTT's witnesses for a link from or to it.
	measuredBy map[string][]string
	// heard is, per site, the data plane's last sign of it: a report from
	// it, or a probe that reached it (LastHeard).
	heard   map[string]time.Time
	static  map[[2]string]float64
	loads   map[string]*Load
	traffic map[string]trafficEntry
	// sites holds every site named by links, static RTTs or traffic, at
	// most cfg.MaxSites of them.
	sites   map[string]struct{}
	version uint64
	// rttVersion counts RTT changes only (MatrixCache keys on it).
	rttVersion uint64
	// loadWrites counts load reports; every loadSweepEvery of them drops the
	// loads of nodes that stopped reporting (gone from the cluster).
	loadWrites uint64
	// loadSnap is LoadSnapshot's map, built at loadSnapAt, valid while no
	// load arrives (loadWrites is still loadSnapWrites) and until
	// loadSnapUntil, when its first entry goes stale (and not if the clock
	// goes back before loadSnapAt).
	loadSnap       map[string]Load
	loadSnapWrites uint64
	loadSnapAt     time.Time
	loadSnapUntil  time.Time
	last           Updates
	// capacity is each site's capacity from a topology file (LoadSpec).
	capacity map[string]int
}

// loadSweepEvery is how many load reports pass between sweeps of stale loads.
const loadSweepEvery = 1024

// Updates says when each kind of data last changed in a store.
type Updates struct {
	RTT, Load, Traffic time.Time
}

type trafficEntry struct {
	rps     float64
	updated time.Time
	static  bool
}

// NewStore returns an empty store that reads time from clk.
func NewStore(cfg Config, clk clock.PassiveClock) *Store {
	return &Store{
		cfg:        cfg.withDefaults(),
		clock:      clk,
		links:      map[[2]string]*Link{},
		measuredBy: map[string][]string{},
		heard:      map[string]time.Time{},
		static:     map[[2]string]float64{},
		loads:      map[string]*Load{},
		traffic:    map[string]trafficEntry{},
		sites:      map[string]struct{}{},
		capacity:   map[string]int{},
	}
}

// admitLocked checks that the store may hold data for sites: each is
// known already, or there is room for the new ones. It records them.
func (s *Store) admitLocked(sites ...string) error {
	var fresh []string
	for _, site := range sites {
		if _, ok := s.sites[site]; !ok && !slices.Contains(fresh, site) {
			fresh = append(fresh, site)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	if len(s.sites)+len(fresh) > s.cfg.MaxSites {
		return reject(ReasonTooManySites, "site %.40q is new and the store already holds data for %d sites (its limit %d)", fresh[0], len(s.sites), s.cfg.MaxSites)
	}
	for _, site := range sites {
		s.sites[site] = struct{}{}
	}
	return nil
}

// MaxSites is the configured limit on sites (Config.MaxSites).
func (s *Store) MaxSites() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cfg.MaxSites
}

// SetConfig changes the store's configuration (for a command that builds the
// store before it has parsed its flags).
func (s *Store) SetConfig(cfg Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg = cfg.withDefaults()
}

// Config returns the store's effective configuration.
func (s *Store) Config() Config {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cfg
}

// Version increases with every change to the store, so readers can cache what
// they derive from it. Staleness is time-driven and does not change Version.
func (s *Store) Version() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.version
}

// RTTVersion increases with every change to the RTTs (measured or static),
// not with load or traffic reports.
func (s *Store) RTTVersion() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rttVersion
}

func (s *Store) checkTime(at time.Time) error {
	if at.IsZero() {
		return reject(ReasonMissingTS, "observation has no timestamp")
	}
	if now := s.clock.Now(); at.After(now.Add(s.cfg.MaxFutureSkew)) {
		return reject(ReasonFutureTS, "timestamp %s is %s ahead of this clock (at most %s allowed)",
			at.UTC().Format(time.RFC3339), at.Sub(now).Round(time.Millisecond), s.cfg.MaxFutureSkew)
	}
	return nil
}

// ValidateRTT checks one RTT value in milliseconds.
func ValidateRTT(ms float64) error {
	switch {
	case math.IsNaN(ms) || math.IsInf(ms, 0):
		return reject(ReasonBadRTT, "RTT %v ms is not a finite number", ms)
	case ms < 0:
		return reject(ReasonBadRTT, "RTT %v ms is negative", ms)
	case ms > MaxRTTMs:
		return reject(ReasonBadRTT, "RTT %v ms is above the %v ms limit", ms, MaxRTTMs)
	}
	return nil
}

func validSiteName(name string) error {
	if name == "" {
		return reject(ReasonBadSite, "empty site name")
	}
	if len(name) > 253 {
		return reject(ReasonBadSite, "site name %.20q... is longer than 253 characters", name)
	}
	return nil
}

// ObserveRTT folds one measurement into the EWMA of its site pair.
// A sample with no probe received updates only the loss.
func (s *Store) ObserveRTT(m RTTSample) error {
	if err := validSiteName(m.From); err != nil {
		return err
	}
	if err := validSiteName(m.To); err != nil {
		return err
	}
	if m.Sent <= 0 || m.Received < 0 || m.Received > m.Sent {
		return reject(ReasonBadLoss, "%s -> %s: received %d of %d probes", m.From, m.To, m.Received, m.Sent)
	}
	if m.Received > 0 {
		if err := ValidateRTT(m.MeanMs); err != nil {
			return fmt.Errorf("%s -> %s: %w", m.From, m.To, err)
		}
	}
	if err := s.checkTime(m.At); err != nil {
		return err
	}
	if m.Reached.After(m.At) {
		return reject(ReasonBadTS, "%s -> %s: probes sent at %s, after the measurement's time %s", m.From, m.To,
			m.Reached.UTC().Format(time.RFC3339Nano), m.At.UTC().Format(time.RFC3339Nano))
	}
	loss := 1 - float64(m.Received)/float64(m.Sent)
	a := s.cfg.Alpha

	s.mu.Lock()
	defer s.mu.Unlock()
	key := [2]string{m.From, m.To}
	l := s.links[key]
	if l == nil {
		if err := s.admitLocked(m.From, m.To); err != nil {
			return err
		}
		l = &Link{Loss: loss}
		s.links[key] = l
		s.measuredBy[m.To] = append(s.measuredBy[m.To], m.From)
	} else {
		l.Loss = a*loss + (1-a)*l.Loss
	}
	// The report shows that From was alive when it was measured, a probe
	// received that To was when the probes went out (Reached); an old
	// report (a retained message) counts as old, one stamped ahead of this
	// clock as now.
	at := m.At
	if now := s.clock.Now(); at.After(now) {
		at = now
	}
	s.hear(m.From, at)
	if m.Received > 0 {
		reached := at
		if !m.Reached.IsZero() && m.Reached.Before(at) {
			reached = m.Reached
		}
		s.hear(m.To, reached)
		if l.Observations == 0 || !s.fresh(l) {
			l.RTTMs = m.MeanMs
		} else {
			l.RTTMs = a*m.MeanMs + (1-a)*l.RTTMs
		}
		l.Observations++
		if m.At.After(l.Updated) {
			l.Updated = m.At
		}
	}
	s.last.RTT = s.clock.Now()
	s.version++
	s.rttVersion++
	return nil
}

// hear notes a sign of site at at; call with s.mu held.
func (s *Store) hear(site string, at time.Time) {
	if at.After(s.heard[site]) {
		s.heard[site] = at
	}
}

// LastHeard is the data plane's last sign of a site: the time of the last
// measurement reported from it, or of a probe that reached it (zero: none).
// A static RTT is no sign.
func (s *Store) LastHeard(site string) time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.heard[site]
}

// SetStaticRTT records a fixed RTT that never goes stale (a static matrix file).
// A fresh measurement of the same pair, in either direction, takes precedence.
func (s *Store) SetStaticRTT(from, to string, ms float64) error {
	if err := validSiteName(from); err != nil {
		return err
	}
	if err := validSiteName(to); err != nil {
		return err
	}
	if err := ValidateRTT(ms); err != nil {
		return fmt.Errorf("%s -> %s: %w", from, to, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.admitLocked(from, to); err != nil {
		return err
	}
	s.static[[2]string{from, to}] = ms
	s.last.RTT = s.clock.Now()
	s.version++
	s.rttVersion++
	return nil
}

func (s *Store) fresh(l *Link) bool {
	return l.Observations > 0 && s.clock.Since(l.Updated) <= s.cfg.TTL
}

// RTT returns the RTT in milliseconds from site from to site to. A fresh
// measurement comes first, then a static figure; a missing or stale direction
// falls back to the reverse one. Within one site the RTT is the intra-site
// figure when there is one, else zero. ok is false when the RTT is unknown: an
// unknown RTT is never reported as zero.
func (s *Store) RTT(from, to string) (ms float64, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rttLocked(from, to)
}

func (s *Store) rttLocked(from, to string) (float64, bool) {
	d := s.detailLocked(from, to)
	return d.Ms, d.Known
}

// RTTDetail is an RTT and what it rests on, for a person (ning explain).
type RTTDetail struct {
	Ms    float64
	Known bool
	// Static is true when the RTT is a static figure (a latency file), or
	// the zero RTT within one site.
	Static bool
	// Measured is when the measurement it rests on was taken; for an
	// unknown RTT, when a measurement now stale was, or zero if never.
	Measured time.Time
}

// Detail returns the RTT from site from to site to, as RTT does, with
// what it rests on.
func (s *Store) Detail(from, to string) RTTDetail {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.detailLocked(from, to)
}

func (s *Store) detailLocked(from, to string) RTTDetail {
	fwd, rev := s.links[[2]string{from, to}], s.links[[2]string{to, from}]
	if fwd != nil && s.fresh(fwd) {
		return RTTDetail{Ms: fwd.RTTMs, Known: true, Measured: fwd.Updated}
	}
	if rev != nil && s.fresh(rev) {
		return RTTDetail{Ms: rev.RTTMs, Known: true, Measured: rev.Updated}
	}
	if v, ok := s.static[[2]string{from, to}]; ok {
		return RTTDetail{Ms: v, Known: true, Static: true}
	}
	if v, ok := s.static[[2]string{to, from}]; ok {
		return RTTDetail{Ms: v, Known: true, Static: true}
	}
	if from == to {
		return RTTDetail{Known: true, Static: true}
	}
	var d RTTDetail
	for _, l := range []*Link{fwd, rev} {
		if l != nil && l.Observations > 0 && l.Updated.After(d.Measured) {
			d.Measured = l.Updated
		}
	}
	return d
}

// Link returns the raw state of one ordered pair, stale or not.
func (s *Store) Link(from, to string) (Link, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l := s.links[[2]string{from, to}]
	if l == nil {
		return Link{}, false
	}
	return *l, true
}

// Fresh reports whether a link state is within the TTL.
func (s *Store) Fresh(l Link) bool { return s.fresh(&l) }

// Matrix returns the RTT between every pair of the given sites, indexed like
// sites. Unknown entries are +Inf.
func (s *Store) Matrix(sites []string) [][]float64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := make([][]float64, len(sites))
	for i, a := range sites {
		m[i] = make([]float64, len(sites))
		for j, b := range sites {
			if v, ok := s.rttLocked(a, b); ok {
				m[i][j] = v
			} else {
				m[i][j] = math.Inf(1)
			}
		}
	}
	return m
}

// Sites returns every site the store has heard of, sorted.
func (s *Store) Sites() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.sites))
	for k := range s.sites {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ValidateLoad checks a load report.
func ValidateLoad(l Load) error {
	if math.IsNaN(l.CPU) || l.CPU < 0 || l.CPU > 1 {
		return reject(ReasonBadLoad, "CPU utilisation %v is outside 0..1", l.CPU)
	}
	for name, p := range map[string]Pressure{"cpu": l.PSI.CPU, "memory": l.PSI.Memory, "io": l.PSI.IO} {
		for kind, v := range map[string]float64{"some": p.Some, "full": p.Full} {
			if math.IsNaN(v) || v < 0 || v > 100 {
				return reject(ReasonBadLoad, "PSI %s %s avg10 %v is outside 0..100", name, kind, v)
			}
		}
	}
	return nil
}

// ObserveLoad folds a node's load report into the store: CPU as an EWMA, PSI as
// the latest value (the kernel already averages it over 10 s).
func (s *Store) ObserveLoad(node string, l Load) error {
	if node == "" {
		return reject(ReasonBadLoad, "load report without a node name")
	}
	if err := ValidateLoad(l); err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	if err := s.checkTime(l.Updated); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.loads[node]
	if cur == nil || s.clock.Since(cur.Updated) > s.cfg.TTL {
		c := l
		s.loads[node] = &c
	} else {
		cur.CPU = s.cfg.Alpha*l.CPU + (1-s.cfg.Alpha)*cur.CPU
		cur.PSI = l.PSI
		if l.Updated.After(cur.Updated) {
			cur.Updated = l.Updated
		}
	}
	s.last.Load = s.clock.Now()
	s.version++
	if s.loadWrites++; s.loadWrites%loadSweepEvery == 0 {
		cutoff := s.clock.Now().Add(-s.cfg.TTL)
		for n, l := range s.loads {
			if l.Updated.Before(cutoff) { // Load would not return it anyway
				delete(s.loads, n)
			}
		}
	}
	return nil
}

// Load returns a node's load; ok is false when none was reported within the TTL.
func (s *Store) Load(node string) (Load, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l := s.loads[node]
	if l == nil || s.clock.Since(l.Updated) > s.cfg.TTL {
		return Load{}, false
	}
	return *l, true
}

// LoadSnapshot returns every node's load that Load would return now, by
// node, under one lock: a scheduling cycle takes it once instead of a lock
// per node. The map is shared by every caller until a load arrives or one
// goes stale, so it must not be modified.
func (s *Store) LoadSnapshot() map[string]Load {
	now := s.clock.Now() // one clock read, not one a node
	s.mu.RLock()
	snap, ok := s.loadSnap, s.loadSnap != nil && s.loadSnapWrites == s.loadWrites &&
		!now.Before(s.loadSnapAt) && !now.After(s.loadSnapUntil)
	s.mu.RUnlock()
	if ok {
		return snap
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	snap = make(map[string]Load, len(s.loads))
	until := now.Add(s.cfg.TTL)
	for n, l := range s.loads {
		if expires := l.Updated.Add(s.cfg.TTL); !now.After(expires) {
			snap[n] = *l
			if expires.Before(until) {
				until = expires
			}
		}
	}
	s.loadSnap, s.loadSnapWrites, s.loadSnapAt, s.loadSnapUntil = snap, s.loadWrites, now, until
	return snap
}

// SetTraffic records the request rate (requests per second) entering at a site.
// Static figures (from a topology file) never go stale.
func (s *Store) SetTraffic(site string, rps float64, at time.Time, static bool) error {
	if err := validSiteName(site); err != nil {
		return err
	}
	if math.IsNaN(rps) || math.IsInf(rps, 0) || rps < 0 {
		return reject(ReasonBadRate, "site %s: request rate %v is not a finite non-negative number", site, rps)
	}
	if !static {
		if err := s.checkTime(at); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.admitLocked(site); err != nil {
		return err
	}
	s.traffic[site] = trafficEntry{rps: rps, updated: at, static: static}
	s.last.Traffic = s.clock.Now()
	s.version++
	return nil
}

// LastUpdates says when each kind of data was last written.
func (s *Store) LastUpdates() Updates {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last
}

// Capacities returns the sites' capacities (the most replicas of one
// workload each may hold) that a topology file gave; a site without one is
// not listed.
func (s *Store) Capacities() map[string]int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.capacity)
}

// Traffic returns the fresh request rate per site.
func (s *Store) Traffic() map[string]float64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]float64, len(s.traffic))
	for site, e := range s.traffic {
		if e.static || s.clock.Since(e.updated) <= s.cfg.TTL {
			out[site] = e.rps
		}
	}
	return out
}
