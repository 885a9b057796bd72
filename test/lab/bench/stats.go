package bench

import (
	"math"
	"sort"
)

// Summary is the response times of a set of requests. Errors count in
// Requests and not in the percentiles.
type Summary struct {
	P50Ms    float64 `json:"p50Ms"`
	P95Ms    float64 `json:"p95Ms"`
	P99Ms    float64 `json:"p99Ms"`
	MeanMs   float64 `json:"meanMs"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	// LocalShare is the share of answered requests served on the node of
	// the site they entered at.
	LocalShare float64 `json:"localShare"`
}

// Summarise computes a Summary; siteNode maps a site to its node.
func Summarise(rs []Result, siteNode map[string]string) Summary {
	var ms []float64
	s := Summary{Requests: len(rs)}
	local := 0
	for _, r := range rs {
		if r.Err != "" {
			s.Errors++
			continue
		}
		ms = append(ms, r.Ms)
		if r.Node != "" && r.Node == siteNode[r.Site] {
			local++
		}
	}
	if len(ms) == 0 {
		return s
	}
	sort.Float64s(ms)
	sum := 0.0
	for _, v := range ms {
		sum += v
	}
	s.P50Ms, s.P95Ms, s.P99Ms = round2(Quantile(ms, 0.5)), round2(Quantile(ms, 0.95)), round2(Quantile(ms, 0.99))
	s.MeanMs = round2(sum / float64(len(ms)))
	s.LocalShare = round2(float64(local) / float64(len(ms)))
	return s
}

// Quantile of sorted values (nearest rank).
func Quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// Window is the p95 of the requests scheduled in [Start, Start+width).
type Window struct {
	Start  float64
	P95Ms  float64
	Errors int
	N      int
}

// Windows cuts rs into windows of width seconds up to end.
func Windows(rs []Result, width, end float64) []Window {
	n := int(math.Ceil(end / width))
	ms := make([][]float64, n)
	ws := make([]Window, n)
	for i := range ws {
		ws[i].Start = float64(i) * width
	}
	for _, r := range rs {
		i := int(r.At / width)
		if i < 0 || i >= n {
			continue
		}
		ws[i].N++
		if r.Err != "" {
			ws[i].Errors++
			continue
		}
		ms[i] = append(ms[i], r.Ms)
	}
	for i := range ws {
		sort.Float64s(ms[i])
		ws[i].P95Ms = Quantile(ms[i], 0.95)
	}
	return ws
}

// SettleTime is the time from `from` until the windowed p95 settles: the
// start of the first window after which every window's p95 stays within
// 20 % (and at least 2 ms) of the p95 of the run's last third. -1: it
// never settles.
func SettleTime(ws []Window, from float64) float64 {
	if len(ws) < 3 {
		return -1
	}
	var tail []float64
	for _, w := range ws[len(ws)*2/3:] {
		if !math.IsNaN(w.P95Ms) {
			tail = append(tail, w.P95Ms)
		}
	}
	if len(tail) == 0 {
		return -1
	}
	sort.Float64s(tail)
	ref := Quantile(tail, 0.5)
	bound := ref + math.Max(0.2*ref, 2)
	settled := -1.0
	for _, w := range ws {
		if w.Start < from {
			continue
		}
		if math.IsNaN(w.P95Ms) || w.P95Ms > bound {
			settled = -1
			continue
		}
		if settled < 0 {
			settled = w.Start - from
		}
	}
	return settled
}
