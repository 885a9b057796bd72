package policy

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"

	"github.com/ning-edge/ning/internal/placement"
)

// This file is the one home of how a weighted RTT and a gain are told to a
// person: the scheduler's Events, the rescheduler's, the dashboard, ning
// status and ning place all call it. placement charges an unknown RTT a
// finite penalty so that costs compare; that penalty is no RTT, and no text
// here ever shows it.

// MeanRTT is the traffic-weighted mean RTT (ms) of placement x, and whether
// it is known. It is not when there is no traffic, no replica, or when some
// traffic is served over a site pair whose RTT is unknown (placement's cost
// then holds the unknown-RTT penalty).
func MeanRTT(p *placement.Problem, x placement.Placement) (float64, bool) {
	if p.TotalTraffic() <= 0 || x.Total() == 0 {
		return 0, false
	}
	c := p.Cost(x)
	if math.IsInf(c, 0) || math.IsNaN(c) {
		return 0, false
	}
	if !hasUnknown(p.RTT) {
		return c, true
	}
	// Charge unknown pairs twice the penalty: the least cost is unchanged
	// exactly when some least-cost routing uses no unknown pair.
	q := *p
	q.RTT = make([][]float64, len(p.RTT))
	for i, row := range p.RTT {
		q.RTT[i] = make([]float64, len(row))
		for j, d := range row {
			q.RTT[i][j] = d
			if math.IsInf(d, 1) {
				q.RTT[i][j] = 2 * placement.UnknownRTTPenaltyMs
			}
		}
	}
	if q.Cost(x) > c+1e-9*math.Max(1, c) {
		return 0, false
	}
	return c, true
}

func hasUnknown(rtt [][]float64) bool {
	for _, row := range rtt {
		for _, d := range row {
			if math.IsInf(d, 1) {
				return true
			}
		}
	}
	return false
}

// unknownValue stands for a weighted RTT that is not known, in a table cell
// or beside other values; unknownText says so in a sentence.
const (
	unknownValue = "unknown"
	unknownText  = "RTT unknown"
)

// FormatMS writes a weighted mean RTT that is known ("12.30 ms") or says it
// is unknown ("unknown").
func FormatMS(ms float64, known bool) string {
	if !known {
		return unknownValue
	}
	return fmt.Sprintf("%.2f ms", ms)
}

// FormatMeanRTT writes placement x's weighted mean RTT (see MeanRTT).
func FormatMeanRTT(p *placement.Problem, x placement.Placement) string {
	return FormatMS(MeanRTT(p, x))
}

// LogMeanRTT is placement x's weighted mean RTT (FormatMeanRTT) as a log
// attribute's value, worked out only when the line is written.
func LogMeanRTT(p *placement.Problem, x placement.Placement) slog.LogValuer {
	return meanRTTLog{p, x}
}

type meanRTTLog struct {
	p *placement.Problem
	x placement.Placement
}

func (m meanRTTLog) LogValue() slog.Value { return slog.StringValue(FormatMeanRTT(m.p, m.x)) }

// formatRate writes a request rate without needless decimals: "300", "12.5".
func formatRate(v float64) string {
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

// unreached is the traffic that has no replica at a known RTT.
func unreached(p *placement.Problem, x placement.Placement) float64 {
	total := 0.0
	for i, w := range p.Traffic {
		if w <= 0 {
			continue
		}
		reached := false
		for j, n := range x {
			reached = reached || (n > 0 && !math.IsInf(p.RTT[i][j], 1))
		}
		if !reached {
			total += w
		}
	}
	return total
}

// unknownFrom says whose RTT is unknown under x: the traffic without a
// replica at a known RTT, or, with a per-replica rate, none in particular
// (the overflow of full replicas goes over an unknown pair).
func unknownFrom(p *placement.Problem, x placement.Placement) string {
	if u := unreached(p, x); u > 0 {
		return fmt.Sprintf("%s from %s req/s", unknownText, formatRate(u))
	}
	return unknownText
}

// DescribeGain says what one more replica at site j does for a workload
// running as current, with share the traffic the site would serve per
// replica (placement.Gains.Share): "first replica: serves all 300 req/s at
// 12.30 ms", "lowers the traffic-weighted mean RTT by 4.20 ms (16.50 → 12.30
// ms), 50 req/s per replica", "brings the weighted mean RTT from unknown to
// 12.30 ms, ...". It never shows placement's unknown-RTT penalty.
func DescribeGain(p *placement.Problem, current placement.Placement, j int, share float64) string {
	w := p.TotalTraffic()
	if w <= 0 {
		return "no traffic to serve"
	}
	after := append(placement.Placement(nil), current...)
	after[j]++
	afterMs, afterKnown := MeanRTT(p, after)
	if current.Total() == 0 {
		if afterKnown {
			return fmt.Sprintf("first replica: serves all %s req/s at a weighted mean RTT of %.2f ms", formatRate(w), afterMs)
		}
		return fmt.Sprintf("first replica: serves all %s req/s; %s", formatRate(w), unknownFrom(p, after))
	}
	perReplica := formatRate(share) + " req/s per replica"
	beforeMs, beforeKnown := MeanRTT(p, current)
	switch {
	case beforeKnown && afterKnown && beforeMs-afterMs >= 0.005:
		return fmt.Sprintf("lowers the traffic-weighted mean RTT by %.2f ms (%.2f → %.2f ms), %s",
			beforeMs-afterMs, beforeMs, afterMs, perReplica)
	case beforeKnown && afterKnown:
		return fmt.Sprintf("leaves the traffic-weighted mean RTT at %.2f ms, %s", afterMs, perReplica)
	case afterKnown:
		return fmt.Sprintf("brings the traffic-weighted mean RTT from unknown to %.2f ms (all traffic now reaches a replica at a known RTT), %s",
			afterMs, perReplica)
	}
	if gained := unreached(p, current) - unreached(p, after); gained > 0 {
		return fmt.Sprintf("brings %s more req/s to a replica at a known RTT; %s, %s",
			formatRate(gained), unknownFrom(p, after), perReplica)
	}
	return fmt.Sprintf("%s, %s", unknownFrom(p, after), perReplica)
}

// DescribeMove says what moving one replica of a workload running as current
// from site from to site to does, beside the planner's placement plan:
// "weighted mean RTT 16.50 ms now, 14.20 ms after this move, 12.30 ms
// planned (25% better)".
func DescribeMove(p *placement.Problem, current placement.Placement, from, to int, plan placement.Placement) string {
	after := append(placement.Placement(nil), current...)
	after[from]--
	after[to]++
	beforeMs, beforeKnown := MeanRTT(p, current)
	planMs, planKnown := MeanRTT(p, plan)
	s := fmt.Sprintf("weighted mean RTT %s now, %s after this move, %s planned",
		FormatMS(beforeMs, beforeKnown), FormatMeanRTT(p, after), FormatMS(planMs, planKnown))
	if beforeKnown && planKnown && beforeMs > 0 {
		s += fmt.Sprintf(" (%.0f%% better)", 100*(beforeMs-planMs)/beforeMs)
	}
	return s
}
