package benchreport

import (
	"fmt"
	"strings"

	"github.com/ning-edge/ning/internal/bench"
)

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# ning benchmark report\n\n")
	w("Made by `%s` on %s.\n\nMachine: %s.\n\n", r.Command, r.Date, r.Machine)
	w("Every figure below comes from this one run. Throughput is measured side by side in one process and\n")
	w("reported as a ratio; the machine is shared and noisy, so compare ratios, not absolute rates.\n\n")

	w("## Headline\n\n| what | figure |\n|---|---|\n")
	for _, t := range r.Throughput {
		w("| scheduling throughput, %d nodes | default %.1f pods/s, ning %.1f pods/s (ning/default %.3f; fair, both without spread scoring, %.3f) |\n",
			t.Nodes, t.Default.PodsPerSecond, t.Ning.PodsPerSecond, t.Ratio, t.FairRatio)
	}
	if e := r.Extender; e != nil {
		w("| extender throughput, %d nodes (nodeCacheCapable) | %.1f pods/s, plugins %.1f pods/s (extender/plugins %.3f) |\n",
			e.Nodes, e.Extender.PodsPerSecond, e.Plugins.PodsPerSecond, e.Ratio)
	}
	if q := r.Quality; q != nil {
		m, worst := meanMax(q.Gaps["ning"])
		w("| planner vs exact optimum, %d random instances | mean gap %.3f %%, worst %.3f %% |\n", q.Instances, m, worst)
	}
	if d := r.Demo; d != nil {
		w("| demo, after the traffic shift (weighted mean RTT) | ning %.2f ms, default scheduler %.2f ms, optimum %.2f ms (ning/default %.3f, ning/optimum %.3f) |\n",
			d.After.NingMs, d.After.DefaultMs, d.After.OptimumMs, ratio(d.After.NingMs, d.After.DefaultMs), ratio(d.After.NingMs, d.After.OptimumMs))
		w("| demo, convergence after the shift | %.1f s, %.0f evictions (converged: %v) |\n", d.ConvergeSec, d.Evictions, d.Converged)
		w("| demo, recovery after node loss | %.1f s (node down after %.0f s; Kubernetes' default toleration 300 s) |\n", d.RecoverSec, d.NodeDownAfter)
	}
	w("\n")

	if len(r.Throughput) > 0 {
		w("## Scheduling throughput\n\n")
		w("Real kube-scheduler (v1.34.1) against the in-process kube-apiserver, nodes without kubelets as in upstream's\n")
		w("scheduler_perf; the same pods (ReplicaSets of 50, a fifth with a `delay_<site>` label) scheduled by each\n")
		w("profile in turn, rounds rotating the order. \"no spread\" is the default profile without PodTopologySpread's\n")
		w("scoring, which ning's profile turns off too: the fair ratio ning/no spread is what ning's own plugins cost.\n")
		w("Also `ning bench scheduler`.\n\n")
		w("| nodes | sites | pods | default pods/s | ning pods/s | no spread pods/s | ning/default | ning/no spread |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, t := range r.Throughput {
			w("| %d | %d | %d | %.1f | %.1f | %.1f | %.3f | %.3f |\n", t.Nodes, t.Sites, t.Pods, t.Default.PodsPerSecond, t.Ning.PodsPerSecond,
				t.NoSpreadScoring.PodsPerSecond, t.Ratio, t.FairRatio)
		}
		w("\n")
	}
	if e := r.Extender; e != nil {
		w("## Extender throughput\n\n")
		w("The stock kube-scheduler calling `ning extender` over HTTP (filter and score calls, nodeCacheCapable) against\n")
		w("ning's plugins, same pods, same run. Also `ning bench extender`.\n\n")
		w("| nodes | pods | extender pods/s | plugins pods/s | extender/plugins |\n|---:|---:|---:|---:|---:|\n")
		w("| %d | %d | %.1f | %.1f | %.3f |\n\n", e.Nodes, e.Pods, e.Extender.PodsPerSecond, e.Plugins.PodsPerSecond, e.Ratio)
	}
	if q := r.Quality; q != nil {
		w("## Placement quality\n\n")
		w("Traffic-weighted mean RTT of each method's placement, as a gap to the exact optimum (enumeration), over %d\n", q.Instances)
		w("random edge topologies (2-10 sites; a third with a per-replica rate limit, a third with site capacities) and\n")
		w("over the example topologies for every replica count up to sites + 2, with and without a rate limit.\n\n")
		w("| method | random: mean gap | random: worst | examples: mean gap | examples: worst |\n|---|---:|---:|---:|---:|\n")
		for _, name := range Methods {
			m, worst := meanMax(q.Gaps[name])
			em, ew := meanMax(q.Examples[name])
			w("| %s | %.3f %% | %.3f %% | %.3f %% | %.3f %% |\n", name, m, worst, em, ew)
		}
		w("\n![gap distribution](quality-gaps.svg)\n\n")
		if len(q.Families) > 0 {
			w("Harder families (`placement.Families`, held to their targets by `TestPlannerFamilies`): RTTs that break the\n")
			w("triangle rule (a third of the pairs detoured or short-cut), uniformly random RTTs, metro clusters, and\n")
			w("minimums with mixed capacities and unknown RTTs. Plan returns the exact optimum wherever it fits a small\n")
			w("budget (every problem of up to 16 sites without a rate limit) and runs an iterated local search beyond.\n\n")
			w("| family | instances | mean gap | worst | exact | target: worst, exact |\n|---|---:|---:|---:|---:|---|\n")
			for _, f := range q.Families {
				w("| %s | %d | %.3f %% | %.3f %% | %.1f %% | ≤ %.1f %%, ≥ %.0f %% |\n", f.Name, f.Instances, f.MeanPct, f.WorstPct,
					100*f.Exact, f.TargetWorstPct, 100*f.TargetMin)
			}
			w("\n")
		}
	}
	if len(r.Bounds) > 0 {
		w("## Placement quality at scale\n\n")
		w("Beyond enumeration, the planner's gap to `placement.LowerBound`, the Lagrangian dual bound (each traffic site's\n")
		w("demand relaxed; per site a knapsack of the traffic one more replica would take), which is at most the optimum: the\n")
		w("gap to the optimum is no larger. Random instances, replicas = sites / 2, half with geographic RTTs, half in\n")
		w("metro clusters far apart; with the rate limit each replica serves 3 / replicas of the traffic. Target: mean at\n")
		w("most 1 %%, worst at most 3 %%.\n\n")
		w("| sites | replicas | rate limit | instances | mean gap to the bound | worst |\n|---:|---:|---|---:|---:|---:|\n")
		for _, g := range r.Bounds {
			w("| %d | %d | %v | %d | %.3f %% | %.3f %% |\n", g.Sites, g.Replicas, g.Limited, g.Instances, g.MeanPct, g.WorstPct)
		}
		w("\n")
	}
	if len(r.Planner) > 0 {
		w("## Planner time against cluster size\n\n")
		w("`placement.Plan` on random topologies, replicas = sites / 2, median of three. With a rate limit each move\n")
		w("is a warm-started re-solve of the transport; above 100 sites the search is polish alone (see README).\n\n")
		w("| sites | replicas | rate limit | ms |\n|---:|---:|---|---:|\n")
		for _, t := range r.Planner {
			w("| %d | %d | %v | %.2f |\n", t.Sites, t.Replicas, t.Limited, t.Millis)
		}
		w("\n![planner time](planner-time.svg)\n\n")
	}
	if len(r.Capacity) > 0 {
		w("## Capacity-aware planner at scale\n\n")
		w("Issue 23's goal 2, with a per-replica rate limit, median over random topologies: Plan with each replica serving\n")
		w("3 / replicas of the traffic; MarginalGains (the scheduler's per-pod score) for a workload of ten replicas, each\n")
		w("serving 8 %% (overloaded: one more replica shrinks every site's share) or 20 %% of the traffic.\n\n")
		w("| measure | sites | replicas | runs | ms | target ms | ms/target |\n|---|---:|---:|---:|---:|---:|---:|\n")
		for _, c := range r.Capacity {
			w("| %s | %d | %d | %d | %.2f | %.0f | %.3f |\n", c.What, c.Sites, c.Replicas, c.Calls, c.Millis, c.TargetMillis, ratio(c.Millis, c.TargetMillis))
		}
		w("\n")
	}
	if len(r.Ingest) > 0 {
		ingestMarkdown(w, r.Ingest)
	}
	if d := r.Demo; d != nil {
		w("## Convergence and recovery (`ning demo`)\n\n")
		w("The demo's scenario on the edge-city topology: %d replicas, traffic shifted from %s to %s, then node %s powered off.\n\n",
			d.Replicas, d.ShiftFrom, d.ShiftTo, d.LostNode)
		w("| weighted mean RTT | before the shift | after the shift |\n|---|---:|---:|\n")
		w("| ning | %.2f ms | %.2f ms |\n| default kube-scheduler | %.2f ms | %.2f ms |\n| exact optimum | %.2f ms | %.2f ms |\n",
			d.Before.NingMs, d.After.NingMs, d.Before.DefaultMs, d.After.DefaultMs, d.Before.OptimumMs, d.After.OptimumMs)
		w("| ning/default | %.3f | %.3f |\n| ning/optimum | %.3f | %.3f |\n\n",
			ratio(d.Before.NingMs, d.Before.DefaultMs), ratio(d.After.NingMs, d.After.DefaultMs),
			ratio(d.Before.NingMs, d.Before.OptimumMs), ratio(d.After.NingMs, d.After.OptimumMs))
		w("Converged %.1f s after the shift with %.0f evictions; recovered %.1f s after the node loss (node down after %.0f s).\n\n",
			d.ConvergeSec, d.Evictions, d.RecoverSec, d.NodeDownAfter)
	}
	w("## Probe accuracy\n\n")
	if r.ProbeAccuracy != "" {
		w("`ning probe`'s methods over emulated WAN links between network namespaces (veth pairs, an NFQUEUE\n")
		w("delay/jitter/loss emulator: this kernel has no netem), measured against configured, from `TestNetnsEndToEnd`\n")
		w("in the same `make bench` run, as root:\n\n")
		if r.ProbeAccuracyFailed {
			w("**In this run the test failed its tolerances (±1 ms of its own reference round trip, at most one lost probe on a\n")
			w("lossless link, the spread the jitter makes)**: something else loaded the machine and\n")
			w("starved the userspace delayer. The figures are what it measured; `make test-netns` on a quiet machine is the\n")
			w("reference.\n\n")
		}
		w("```\n%s```\n\n", r.ProbeAccuracy)
	} else if r.ProbeAccuracySkipped != "" {
		w("Not measured in this run: `TestNetnsEndToEnd` did not run (%s). `make bench` as root with ip and\n", r.ProbeAccuracySkipped)
		w("iptables (`.ci/run` installs them), or `make test-netns`, measures it.\n\n")
	} else {
		w("Not measured in this run: it needs root (network namespaces). `make bench` as root, or `make test-netns`,\n")
		w("measures it.\n\n")
	}
	if len(r.Errors) > 0 {
		w("## Sections that failed\n\n")
		for _, e := range r.Errors {
			w("- %s\n", e)
		}
	}
	return b.String()
}

// ingestMarkdown is the scale-of-data section: probe reports through the
// broker into the store, and how each figure grows with the sites.
func ingestMarkdown(w func(string, ...any), rs []*bench.IngestResult) {
	first := rs[0]
	w("## Scale of data: probe reports into the store\n\n")
	w("One prober per site (simulated at the report level: %d targets per report, other sites' first node, and the\n", first.Fanout)
	w("node's load), each with its own MQTT connection to the embedded broker (mochi-mqtt, `internal/broker`); one\n")
	w("subscriber feeds the MQTT source (`source.MQTT`) and its `topology.Store`. Reports/s is three rounds of every\n")
	w("prober after a warm-up round, each round sent once the one before arrived, as probers on an interval send (the\n")
	w("broker keeps at most 1,024 QoS 1 messages in flight to one subscriber and drops the rest, so a larger burst loses\n")
	w("reports: more than about 1,000 probers reporting at the same instant need a second subscriber or a larger bound); the store's cost is `source.MQTT.Handle` (decode, validate, cross-check, store)\n")
	w("without the broker; memory is the live heap the store holds once every prober reported. The × columns are the\n")
	w("ratio to the %d-site row. Also `go test -run '^$' -bench Ingest ./internal/bench`.\n\n", first.Sites)
	w("| sites | nodes | reports/s | × | store µs/report | × | bytes/site | × | bytes/node |\n")
	w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		w("| %d | %d | %.0f | %.2f | %.1f | %.2f | %.0f | %.2f | %.0f |\n", r.Sites, r.Nodes, r.ReportsPerSecond,
			ratio(r.ReportsPerSecond, first.ReportsPerSecond), r.StoreNsPerReport/1e3, ratio(r.StoreNsPerReport, first.StoreNsPerReport),
			r.BytesPerSite, ratio(r.BytesPerSite, first.BytesPerSite), r.BytesPerNode)
	}
	w("\n")
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
