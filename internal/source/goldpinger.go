package source

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/topology"
)

// CheckAll is the part of Goldpinger's GET /check_all answer ning reads
// (swagger definition CheckAllResults): every Goldpinger pod, keyed by its
// pod IP, with what it measured calling every other pod's /ping.
type CheckAll struct {
	OK    *bool `json:"OK"`
	Hosts []struct {
		PodName string `json:"podName"`
		HostIP  string `json:"hostIP"`
		PodIP   string `json:"podIP"`
	} `json:"hosts"`
	Responses map[string]CheckAllPodResult `json:"responses"`
}

// CheckAllPodResult is one source pod's answer (swagger CheckAllPodResult).
type CheckAllPodResult struct {
	OK         *bool  `json:"OK"`
	PodIP      string `json:"PodIP"`
	HostIP     string `json:"HostIP"`
	Error      string `json:"error"`
	StatusCode int    `json:"status-code"`
	Response   *struct {
		PodResults map[string]PodResult `json:"podResults"`
	} `json:"response"`
}

// PodResult is one source pod's call to one target pod (swagger PodResult).
// ResponseTimeMs is the wall-clock time of an HTTP GET /ping in whole
// milliseconds: a connection set-up and a request, so about one to two RTTs.
type PodResult struct {
	OK             *bool    `json:"OK"`
	PodIP          string   `json:"PodIP"`
	HostIP         string   `json:"HostIP"`
	Error          string   `json:"error"`
	StatusCode     int      `json:"status-code"`
	ResponseTimeMs *float64 `json:"response-time-ms"`
}

// DecodeCheckAll decodes a /check_all body, bounded to maxBytes. Errors are
// *topology.RejectError.
func DecodeCheckAll(data []byte, maxBytes int) (*CheckAll, error) {
	if len(data) > maxBytes {
		return nil, &topology.RejectError{Reason: ReasonTooLarge, Detail: fmt.Sprintf("body of %d bytes is over the %d byte limit", len(data), maxBytes)}
	}
	var c CheckAll
	if err := decodeJSON(data, &c); err != nil {
		return nil, &topology.RejectError{Reason: ReasonUndecodable, Detail: fmt.Sprintf("decoding /check_all: %v", err)}
	}
	if c.Responses == nil {
		return nil, &topology.RejectError{Reason: ReasonUndecodable, Detail: "decoding /check_all: no responses object"}
	}
	return &c, nil
}

// decodeJSON decodes exactly one JSON value.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

// GoldpingerObservations turns a /check_all answer into one RTT sample per
// ordered site pair: sent is the calls between pods of the two sites, received
// those that succeeded, the mean their response time. A source pod that could
// not be reached itself says nothing and is left out; pods whose IPs map to no
// site are skipped and counted in unmapped. Any invalid value rejects the
// whole answer.
func GoldpingerObservations(c *CheckAll, sites Sites, at time.Time) (samples []topology.RTTSample, unmapped int, err error) {
	hostOf := map[string]string{}
	for _, h := range c.Hosts {
		if h.PodIP != "" {
			hostOf[h.PodIP] = h.HostIP
		}
	}
	type agg struct {
		sent, received int
		sum            float64
	}
	pairs := map[[2]string]*agg{}
	srcs := make([]string, 0, len(c.Responses))
	for ip := range c.Responses {
		srcs = append(srcs, ip)
	}
	sort.Strings(srcs)
	for _, srcIP := range srcs {
		src := c.Responses[srcIP]
		if src.OK == nil || !*src.OK || src.Response == nil {
			continue
		}
		from, ok := sites.ofIP(src.HostIP, hostOf[srcIP], srcIP)
		if !ok {
			unmapped++
			continue
		}
		for dstIP, r := range src.Response.PodResults {
			to, ok := sites.ofIP(r.HostIP, hostOf[dstIP], dstIP)
			if !ok {
				unmapped++
				continue
			}
			a := pairs[[2]string{from, to}]
			if a == nil {
				a = &agg{}
				pairs[[2]string{from, to}] = a
			}
			a.sent++
			if r.OK == nil || !*r.OK {
				continue
			}
			if r.ResponseTimeMs == nil {
				return nil, 0, &topology.RejectError{Reason: topology.ReasonBadRTT,
					Detail: fmt.Sprintf("%s -> %s: a successful call without response-time-ms", srcIP, dstIP)}
			}
			if err := topology.ValidateRTT(*r.ResponseTimeMs); err != nil {
				return nil, 0, fmt.Errorf("%s -> %s: %w", srcIP, dstIP, err)
			}
			a.received++
			a.sum += *r.ResponseTimeMs
		}
	}
	keys := make([][2]string, 0, len(pairs))
	for k := range pairs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	for _, k := range keys {
		a := pairs[k]
		m := topology.RTTSample{From: k[0], To: k[1], Sent: a.sent, Received: a.received, At: at}
		if a.received > 0 {
			m.MeanMs = a.sum / float64(a.received)
		}
		samples = append(samples, m)
	}
	return samples, unmapped, nil
}

// NewGoldpinger returns a source for the Goldpinger at cfg.URL (its
// /check_all); sites maps pod and host IPs to sites.
func NewGoldpinger(store *topology.Store, cfg HTTPConfig, sites Sites, clk clock.PassiveClock, m *Metrics, log *slog.Logger) *Poller {
	observe := func(body []byte, maxBytes int, peers Sites, at time.Time) ([]topology.RTTSample, int, error) {
		c, err := DecodeCheckAll(body, maxBytes)
		if err != nil {
			return nil, 0, err
		}
		return GoldpingerObservations(c, peers, at)
	}
	return newPoller("goldpinger", observe, store, cfg, sites, clk, m, log)
}

// storeSamples writes samples, all or (as far as can be checked first) none.
func storeSamples(store *topology.Store, samples []topology.RTTSample) error {
	for _, m := range samples {
		if m.From == "" || m.To == "" || len(m.From) > 253 || len(m.To) > 253 {
			return &topology.RejectError{Reason: topology.ReasonBadSite, Detail: fmt.Sprintf("site pair %q -> %q", m.From, m.To)}
		}
	}
	for _, m := range samples {
		if err := store.ObserveRTT(m); err != nil {
			return fmt.Errorf("storing %s -> %s: %w", m.From, m.To, err)
		}
	}
	return nil
}
