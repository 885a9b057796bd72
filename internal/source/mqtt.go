// Package source turns outside reports into topology.Store observations. Every
// payload is decoded and validated in full before anything reaches the store;
// a rejected report is counted in ning_reports_rejected_total{reason}.
package source

import (
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/utils/clock"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/logging"
	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/topology"
)

// DefaultMaxPayload bounds one MQTT payload: a report of a few hundred targets
// with 100 samples each fits well inside it.
const DefaultMaxPayload = 1 << 20

// MaxSamplesPerTarget bounds raw RTT samples in one target result.
const MaxSamplesPerTarget = 10_000

// Reasons a report is rejected beyond topology's (topology.Reason*).
const (
	ReasonTooLarge      = "too_large"
	ReasonUndecodable   = "undecodable"
	ReasonUnknownSite   = "unknown_site"
	ReasonTopicMismatch = "topic_mismatch"
	ReasonUnknownTopic  = "unknown_topic"
	ReasonStore         = "store"
	// ReasonNodeSite rejects a load report for a node that is not in the
	// reporting site (or not in the cluster): a prober speaks for its own
	// site's nodes only.
	ReasonNodeSite = "node_site_mismatch"
)

// Config tunes an MQTT source.
type Config struct {
	// AllowedSites, when not empty, is the only sites a report may name (as
	// source or target); a report naming another is rejected.
	AllowedSites []string
	// MaxPayload bounds one payload in bytes; zero means DefaultMaxPayload.
	MaxPayload int
	// CrossCheck checks each measured RTT against the other sites' reports
	// (topology.Store.CheckRTT); the zero value flags.
	CrossCheck topology.CrossCheck
	// NodeSite, when set, gives the site of a node of the cluster; a load
	// report for a node outside the reporting site is then rejected.
	NodeSite func(node string) (site string, ok bool)
}

// MQTT feeds LatencyReports and TrafficReports from MQTT into a Store.
type MQTT struct {
	store    *topology.Store
	clock    clock.PassiveClock
	allowed  map[string]bool
	maxBytes int
	log      *slog.Logger
	cross    topology.CrossCheck
	nodeSite func(string) (string, bool)
	throttle *logging.Throttle

	implausible *prometheus.CounterVec

	rejected *prometheus.CounterVec
	accepted *prometheus.CounterVec
	// onStored, when set, runs after a report was written (tests measure
	// publish-to-store latency with it).
	onStored func(topic string)
}

// NewMQTT returns a source writing to store; metrics go to reg.
func NewMQTT(store *topology.Store, cfg Config, clk clock.PassiveClock, reg prometheus.Registerer, log *slog.Logger) (*MQTT, error) {
	cross, err := cfg.CrossCheck.WithDefaults()
	if err != nil {
		return nil, err
	}
	s := &MQTT{store: store, clock: clk, maxBytes: cfg.MaxPayload, log: log, cross: cross, nodeSite: cfg.NodeSite,
		throttle: logging.NewThrottle(time.Minute, clock.RealClock{})}
	if s.maxBytes <= 0 {
		s.maxBytes = DefaultMaxPayload
	}
	if len(cfg.AllowedSites) > 0 {
		s.allowed = map[string]bool{}
		for _, site := range cfg.AllowedSites {
			s.allowed[site] = true
		}
	}
	m, err := NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	s.rejected, s.accepted, s.implausible = m.rejected, m.accepted, m.implausible
	return s, nil
}

// Handle is an mqtt.Handler: it validates one message and writes it to the
// store, or counts why not.
func (s *MQTT) Handle(topic string, payload []byte) {
	if err := s.handle(topic, payload); err != nil {
		reason := rejectReason(err)
		s.rejected.WithLabelValues(reason).Inc()
		if ok, suppressed := s.throttle.Allow(topic + "\x00" + reason); ok {
			s.log.Warn("report rejected", "topic", topic, "reason", reason, "err", err, "suppressedSinceLast", suppressed)
		}
		return
	}
	if s.onStored != nil {
		s.onStored(topic)
	}
}

func (s *MQTT) handle(topic string, payload []byte) error {
	if topic == mqtt.TopicTraffic {
		r, err := DecodeTrafficReport(payload, s.maxBytes)
		if err != nil {
			return err
		}
		return s.storeTraffic(r)
	}
	site, ok := mqtt.SiteFromTopic(topic)
	if !ok {
		return &topology.RejectError{Reason: ReasonUnknownTopic, Detail: fmt.Sprintf("topic %q is not a ning topic", topic)}
	}
	r, err := DecodeLatencyReport(payload, s.maxBytes)
	if err != nil {
		return err
	}
	if r.GetSourceSite() != site {
		return &topology.RejectError{Reason: ReasonTopicMismatch,
			Detail: fmt.Sprintf("report from site %q published on %q", r.GetSourceSite(), topic)}
	}
	return s.storeLatency(r)
}

// DecodeLatencyReport decodes one payload, bounded to maxBytes. Errors are
// *topology.RejectError.
func DecodeLatencyReport(payload []byte, maxBytes int) (*ningv1.LatencyReport, error) {
	if len(payload) > maxBytes {
		return nil, &topology.RejectError{Reason: ReasonTooLarge,
			Detail: fmt.Sprintf("payload of %d bytes is over the %d byte limit", len(payload), maxBytes)}
	}
	r := &ningv1.LatencyReport{}
	if err := proto.Unmarshal(payload, r); err != nil {
		return nil, &topology.RejectError{Reason: ReasonUndecodable, Detail: fmt.Sprintf("decoding LatencyReport: %v", err)}
	}
	return r, nil
}

// DecodeTrafficReport is DecodeLatencyReport for TrafficReports.
func DecodeTrafficReport(payload []byte, maxBytes int) (*ningv1.TrafficReport, error) {
	if len(payload) > maxBytes {
		return nil, &topology.RejectError{Reason: ReasonTooLarge,
			Detail: fmt.Sprintf("payload of %d bytes is over the %d byte limit", len(payload), maxBytes)}
	}
	r := &ningv1.TrafficReport{}
	if err := proto.Unmarshal(payload, r); err != nil {
		return nil, &topology.RejectError{Reason: ReasonUndecodable, Detail: fmt.Sprintf("decoding TrafficReport: %v", err)}
	}
	return r, nil
}

// Observations is a validated LatencyReport, ready for the store.
type Observations struct {
	RTT      []topology.RTTSample
	Node     string
	Load     *topology.Load
	Reported time.Time
}

func (s *MQTT) checkSite(site string) error {
	if site == "" {
		return &topology.RejectError{Reason: topology.ReasonBadSite, Detail: "report names an empty site"}
	}
	if s.allowed != nil && !s.allowed[site] {
		return &topology.RejectError{Reason: ReasonUnknownSite, Detail: fmt.Sprintf("site %q is not in the allowed list", site)}
	}
	return nil
}

func (s *MQTT) checkTime(ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, &topology.RejectError{Reason: topology.ReasonMissingTS, Detail: "report has no time"}
	}
	if !ts.IsValid() {
		return time.Time{}, &topology.RejectError{Reason: topology.ReasonMissingTS, Detail: "report time is not a valid timestamp"}
	}
	at := ts.AsTime()
	skew := s.store.Config().MaxFutureSkew
	if now := s.clock.Now(); at.After(now.Add(skew)) {
		return time.Time{}, &topology.RejectError{Reason: topology.ReasonFutureTS,
			Detail: fmt.Sprintf("report time %s is %s ahead of this clock (at most %s allowed)",
				at.UTC().Format(time.RFC3339), at.Sub(now).Round(time.Millisecond), skew)}
	}
	return at, nil
}

// Validate checks a whole LatencyReport and converts it; nothing is stored.
func (s *MQTT) Validate(r *ningv1.LatencyReport) (*Observations, error) {
	if err := s.checkSite(r.GetSourceSite()); err != nil {
		return nil, err
	}
	at, err := s.checkTime(r.GetTime())
	if err != nil {
		return nil, err
	}
	reached := at
	if r.GetStarted() != nil {
		if reached, err = s.checkTime(r.GetStarted()); err != nil {
			return nil, fmt.Errorf("started: %w", err)
		}
		if reached.After(at) {
			return nil, &topology.RejectError{Reason: topology.ReasonBadTS,
				Detail: fmt.Sprintf("round started at %s, after its time %s", reached.UTC().Format(time.RFC3339Nano), at.UTC().Format(time.RFC3339Nano))}
		}
	}
	obs := &Observations{Node: r.GetSourceNode(), Reported: at}
	for i, t := range r.GetTargets() {
		if err := s.checkSite(t.GetSite()); err != nil {
			return nil, fmt.Errorf("target %d: %w", i, err)
		}
		if t.GetSent() == 0 || t.GetReceived() > t.GetSent() {
			return nil, &topology.RejectError{Reason: topology.ReasonBadLoss,
				Detail: fmt.Sprintf("target %d (%s): received %d of %d probes", i, t.GetSite(), t.GetReceived(), t.GetSent())}
		}
		if n := len(t.GetRttMs()); n > MaxSamplesPerTarget || (n > 0 && n != int(t.GetReceived())) {
			return nil, &topology.RejectError{Reason: topology.ReasonBadRTT,
				Detail: fmt.Sprintf("target %d (%s): %d RTT samples for %d replies", i, t.GetSite(), n, t.GetReceived())}
		}
		if t.GetReceived() > 0 {
			for _, v := range append([]float64{t.GetMinMs(), t.GetAvgMs(), t.GetMaxMs(), t.GetP50Ms(), t.GetP99Ms(), t.GetStddevMs()}, t.GetRttMs()...) {
				if err := topology.ValidateRTT(v); err != nil {
					return nil, fmt.Errorf("target %d (%s): %w", i, t.GetSite(), err)
				}
			}
		}
		obs.RTT = append(obs.RTT, topology.RTTSample{
			From: r.GetSourceSite(), To: t.GetSite(), MeanMs: t.GetAvgMs(),
			Sent: int(t.GetSent()), Received: int(t.GetReceived()), At: at, Reached: reached,
		})
	}
	if l := r.GetLoad(); l != nil {
		if obs.Node == "" {
			return nil, &topology.RejectError{Reason: topology.ReasonBadLoad, Detail: "load report without a source node"}
		}
		if s.nodeSite != nil {
			if site, ok := s.nodeSite(obs.Node); !ok || site != r.GetSourceSite() {
				return nil, &topology.RejectError{Reason: ReasonNodeSite,
					Detail: fmt.Sprintf("site %q reports the load of node %q, which is not one of its nodes", r.GetSourceSite(), obs.Node)}
			}
		}
		load := topology.Load{
			CPU: l.GetCpuUtilisation(),
			PSI: topology.PSI{
				CPU:    topology.Pressure{Some: l.GetCpu().GetSomeAvg10(), Full: l.GetCpu().GetFullAvg10()},
				Memory: topology.Pressure{Some: l.GetMemory().GetSomeAvg10(), Full: l.GetMemory().GetFullAvg10()},
				IO:     topology.Pressure{Some: l.GetIo().GetSomeAvg10(), Full: l.GetIo().GetFullAvg10()},
			},
			Updated: at,
		}
		if err := topology.ValidateLoad(load); err != nil {
			return nil, err
		}
		obs.Load = &load
	}
	return obs, nil
}

func (s *MQTT) storeLatency(r *ningv1.LatencyReport) error {
	obs, err := s.Validate(r)
	if err != nil {
		return err
	}
	if err := s.crossCheck(obs.RTT); err != nil {
		return err
	}
	for _, m := range obs.RTT {
		if err := s.store.ObserveRTT(m); err != nil {
			return fmt.Errorf("storing %s -> %s: %w", m.From, m.To, err)
		}
	}
	if obs.Load != nil {
		if err := s.store.ObserveLoad(obs.Node, *obs.Load); err != nil {
			return fmt.Errorf("storing load of %s: %w", obs.Node, err)
		}
	}
	s.accepted.WithLabelValues("latency").Inc()
	return nil
}

func (s *MQTT) storeTraffic(r *ningv1.TrafficReport) error {
	at, err := s.checkTime(r.GetTime())
	if err != nil {
		return err
	}
	if w := r.GetWindowSeconds(); math.IsNaN(w) || math.IsInf(w, 0) || w < 0 {
		return &topology.RejectError{Reason: topology.ReasonBadRate, Detail: fmt.Sprintf("window %v s is not a finite non-negative number", w)}
	}
	for _, st := range r.GetSites() {
		if err := s.checkSite(st.GetSite()); err != nil {
			return err
		}
		if v := st.GetRequestsPerSecond(); math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return &topology.RejectError{Reason: topology.ReasonBadRate,
				Detail: fmt.Sprintf("site %s: request rate %v is not a finite non-negative number", st.GetSite(), v)}
		}
	}
	for _, st := range r.GetSites() {
		if err := s.store.SetTraffic(st.GetSite(), st.GetRequestsPerSecond(), at, false); err != nil {
			return fmt.Errorf("storing traffic of %s: %w", st.GetSite(), err)
		}
	}
	s.accepted.WithLabelValues("traffic").Inc()
	return nil
}

// crossCheck runs topology.Store.CheckRTT on every sample of a report. An
// implausible one is counted in ning_reports_implausible_total{action} and
// logged once per source site a minute; in reject mode the report is
// refused (and counted as rejected, reason implausible_rtt).
func (s *MQTT) crossCheck(samples []topology.RTTSample) error {
	for _, m := range samples {
		err := s.store.CheckRTT(m, s.cross)
		if err == nil {
			continue
		}
		action := "flagged"
		if s.cross.Mode == topology.CrossCheckReject {
			action = "rejected"
		}
		s.implausible.WithLabelValues(action).Inc()
		if ok, suppressed := s.throttle.Allow("implausible\x00" + m.From); ok {
			s.log.Warn("implausible RTT report", "site", m.From, "action", action, "err", err, "suppressedSinceLast", suppressed)
		}
		if action == "rejected" {
			return err
		}
	}
	return nil
}
