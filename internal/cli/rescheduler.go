package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/component-base/metrics/legacyregistry"

	"github.com/ning-edge/ning/internal/rescheduler"
)

type reschedulerOptions struct {
	cfg         rescheduler.Config
	kubeconfig  string
	listen      string
	leaderElect bool
	leader      rescheduler.LeaderConfig
	sources     sourceOptions
	logLevel    string
}

func newReschedulerCommand() *cobra.Command {
	o := &reschedulerOptions{cfg: rescheduler.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "rescheduler",
		Short: "Move ning's pods toward their traffic and heal after node failures",
		Long: `rescheduler watches the pods scheduled by ning (--scheduler-name), grouped by
their ReplicaSet or StatefulSet, and every --interval:

- repairs delay constraints: a pod whose delay_<from> label is broken by a
  measured RTT (an unknown RTT alone never evicts) for --hold-cycles cycles is
  evicted, when another site meets the constraint;
- moves pods toward traffic: when the planner's placement would lower the
  workload's traffic-weighted mean RTT by at least --threshold (and by
  --min-gain-ms), for
  --hold-cycles cycles in a row, it evicts one pod from a site with more than
  planned, chosen so that the scheduler's TrafficLatency score puts the
  replacement where it lowers the RTT (on an edge site while one fits: cloud
  nodes, --cloud-label=--cloud-value, take a replacement only when no edge
  node can, as CloudFallback scores them). It never takes a site with traffic below
  --min-per-traffic-site pods, nor, with --min-per-occupied-site, any site
  that runs the workload below that many (seed 000's "shutting down idle
  pods, but keeping at least 1"; off by default: a replica on a site no
  traffic reaches first serves nobody sooner than one nearer the traffic).
  A pod is idle when its site runs more of the workload's pods than the
  planner gives it; the rescheduler moves it (the replica count never
  changes). Before the next eviction of that workload it waits for the
  replacement to be Ready and for --move-cooldown, counted from the
  eviction, to pass.

Per-site limits: no move targets a site that holds its limit of the
workload's replicas (the smaller of the pods' ning.io/max-per-site label and
the site's capacity: the --latency-file topology's capacity, or its nodes'
ning.io/site-capacity label), and the planner fills a site until its limit
and deals the rest to the next sites in its order, as the scheduler's
TrafficLatency Filter does.

Before any eviction the target is checked with kube-scheduler's own filters
(NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts,
NodeResourcesFit) on its nodes: when no node fits the replacement (say, none
has the CPU the pod requests), nothing is evicted, and the decision is
counted as target_unfit in ning_rescheduler_decisions_total.

Loops: a replacement that the scheduler puts back on the site its pod was
evicted from (a bounce: the scheduler disagrees with the prediction) is
counted in ning_rescheduler_move_bounces_total, and each bounce in a row
doubles the workload's wait, from the larger of twice --move-cooldown and
--interval up to --bounce-backoff-max. The memory of moves is kept in the annotations of the
rescheduler's Events (each eviction's, and a NingMoveBounced Event on the
workload), so that a new leader, which lists them once, carries it on.

Evictions go through the policy/v1 Eviction API, so PodDisruptionBudgets hold,
within --max-evictions-per-cycle, -per-namespace, -per-workload and -per-node,
and at most --eviction-qps a second over all workloads. Each gets
an Event on the pod (NingReschedule, NingDelayViolation) and is counted in
ning_rescheduler_evictions_total.

Node failures: a node whose Lease has not been renewed (as this process sees
it), or whose Ready condition has not been True, for --node-down-after is down.
ning taints it ning.io/node-down:NoSchedule and deletes its ReplicaSet pods
(forced when the node is unreachable), so that they are replaced at once rather
than after Kubernetes' 300 s toleration. StatefulSet pods are left to Kubernetes
unless --allow-statefulset-force: force-deleting a pod whose node is only
partitioned can leave two pods with one identity running. When more than half
the nodes look down at once, nothing is deleted. A node that is back loses the
taint.

Partition or death: a node whose Lease has gone silent while the data plane
still hears its site (a probe reached the site, or a report came from it, after
the node's Lease was due and within --data-plane-window) is cut off from the
control plane, not dead. It is tainted too, so nothing new lands there, and
each Deployment with pods there gets as many replicas more at once (annotation
ning.io/partition-surge), placed elsewhere for the traffic the rest of the
cluster can no longer route to it; its pods are kept until the data plane
stops hearing the site, or --partition-autonomy has passed since its last
renewal. Then it is dead, as above, and the added replicas are taken back. A
node's own node.openyurt.io/autonomy-duration (OpenYurt's; "0" is no bound)
replaces --partition-autonomy and holds whatever the data plane says. Events
NingNodeCutOff, NingNodeDown and NingPartitionSurge say each step. For the data
plane to see a partition, the probers' --period must be well under
--node-down-after; otherwise partitions are taken for deaths, as before.

Failover reserve (seed 002's placeholders), with --failover-reserve: for each
workload whose pod template has the annotation ning.io/failover-reserve: "N",
N placeholder pods are kept in --placeholder-namespace, each asking for what
the workload's largest pod asks for, running --placeholder-image, of the
low-priority --placeholder-priority-class (which should have
preemptionPolicy: Never). They go on the sites the planner would use if the
site holding most of the workload failed, and only on sites within the
workload's delay_<from> limits; workloads whose failure sites differ share a
placeholder. When a node is lost, its replacements preempt the placeholders
(ning's scheduler profile lets a pod preempt only placeholder pods:
PlaceholderPreemption) and run at once; the placeholders are made again, and
deleted when the annotation goes. Metrics: ning_rescheduler_placeholders,
ning_rescheduler_reserve_units, ning_rescheduler_placeholder_actions_total,
ning_rescheduler_bad_failover_reserve_total (a malformed annotation).

Only the replica holding the Lease --leader-elect-name acts; a replica that
loses it stops acting and campaigns again with fresh caches. --dry-run logs
every eviction and deletion it would make, and makes none.`,
		Example: `  ning rescheduler --kubeconfig ~/.kube/config --latency-file examples/edge-city.yaml --dry-run
  ning rescheduler --mqtt --broker tls://broker:8883 --mqtt-ca ca.pem --threshold 0.15 --hold-cycles 4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd)
			defer stop()
			return run(ctx, o, rescheduler.Run)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func (o *reschedulerOptions) AddFlags(f *pflag.FlagSet) {
	c := &o.cfg
	addKubeconfigFlag(f, &o.kubeconfig)
	f.DurationVar(&c.Interval, "interval", c.Interval, "time between rescheduling cycles")
	f.Float64Var(&c.Threshold, "threshold", c.Threshold, "relative drop in weighted RTT the plan must promise before acting (0.1 = 10 %)")
	f.Float64Var(&c.MinGainMs, "min-gain-ms", c.MinGainMs, "smallest drop in weighted RTT, in ms, worth a move")
	f.IntVar(&c.HoldCycles, "hold-cycles", c.HoldCycles, "consecutive cycles a gain or a delay violation must hold before acting")
	f.IntVar(&c.MinPerTrafficSite, "min-per-traffic-site", c.MinPerTrafficSite, "pods a site with traffic always keeps")
	f.IntVar(&c.MinPerOccupiedSite, "min-per-occupied-site", c.MinPerOccupiedSite, "pods a site that runs one of the workload's pods always keeps, traffic or not (1: seed 000's \"keeping at least 1\"; 0: off)")
	f.IntVar(&c.MaxPerCycle, "max-evictions-per-cycle", c.MaxPerCycle, "evictions per cycle in all")
	f.IntVar(&c.MaxPerNamespace, "max-evictions-per-namespace", c.MaxPerNamespace, "evictions per cycle in one namespace")
	f.IntVar(&c.MaxPerNode, "max-evictions-per-node", c.MaxPerNode, "evictions per cycle from one node (0: no limit)")
	f.IntVar(&c.MaxPerWorkload, "max-evictions-per-workload", c.MaxPerWorkload, "evictions per cycle of one workload (each waits for the last replacement to be Ready)")
	f.DurationVar(&c.SettleTimeout, "settle-timeout", c.SettleTimeout, "longest wait for an evicted pod's replacement to be Ready")
	f.DurationVar(&c.MoveCooldown, "move-cooldown", c.MoveCooldown, "time a workload is left alone after one of its pods was evicted (0: none)")
	f.DurationVar(&c.BounceBackoffMax, "bounce-backoff-max", c.BounceBackoffMax, "longest wait after replacements landed back on the site their pod was evicted from (each such bounce doubles the wait, from the larger of twice --move-cooldown and --interval)")
	f.Float64Var(&c.EvictionQPS, "eviction-qps", c.EvictionQPS, "evictions per second at most, over all workloads (0: no limit; node-down deletions are not limited)")
	f.IntVar(&c.EvictionBurst, "eviction-burst", c.EvictionBurst, "evictions at once at most under --eviction-qps")
	f.DurationVar(&c.NodeDownAfter, "node-down-after", c.NodeDownAfter, "a node silent or not Ready this long is down")
	f.DurationVar(&c.DataPlaneWindow, "data-plane-window", c.DataPlaneWindow, "a silent node whose site the data plane heard (after the node's Lease was due) within this long is cut off, not dead: its pods are kept (0: every silent node is dead)")
	f.DurationVar(&c.PartitionAutonomy, "partition-autonomy", c.PartitionAutonomy, "longest time a cut-off node keeps its pods, from its last renewal; a node's node.openyurt.io/autonomy-duration replaces it (0: a partition is a death)")
	f.BoolVar(&c.AllowStatefulSetForce, "allow-statefulset-force", false, "also force-delete StatefulSet pods on down nodes (split-brain risk; see --help)")
	f.BoolVar(&c.DryRun, "dry-run", false, "log evictions and deletions instead of making them")
	f.StringVar(&c.SchedulerName, "scheduler-name", c.SchedulerName, "manage pods with this spec.schedulerName")
	f.StringVar((*string)(&c.UnknownRTT), "unknown-rtt", string(c.UnknownRTT), "NetworkLatency's unknownRTT (FailClosed or FailOpen): where the scheduler may put a replacement")
	f.Float64Var(&c.PerReplicaRPS, "per-replica-rps", 0, "traffic one replica serves, as in TrafficLatencyArgs (0: no limit)")
	f.StringVar(&c.CloudFallback.CloudLabel, "cloud-label", c.CloudFallback.CloudLabel, "label marking cloud nodes, as in CloudFallbackArgs: the scheduler uses them only when no edge node fits, so no move targets them then")
	f.StringVar(&c.CloudFallback.CloudValue, "cloud-value", c.CloudFallback.CloudValue, "value of --cloud-label on cloud nodes")
	f.BoolVar(&c.FailoverReserve, "failover-reserve", false, "keep placeholder pods for the workloads annotated ning.io/failover-reserve (see --help)")
	f.StringVar(&c.PlaceholderNamespace, "placeholder-namespace", c.PlaceholderNamespace, "namespace of the failover placeholder pods")
	f.StringVar(&c.PlaceholderPriorityClass, "placeholder-priority-class", c.PlaceholderPriorityClass, "PriorityClass of the placeholder pods: low (negative) value, preemptionPolicy Never")
	f.StringVar(&c.PlaceholderImage, "placeholder-image", c.PlaceholderImage, "image the placeholder pods run (a pause image)")
	f.StringVar(&o.listen, "listen", ":10262", "address for /healthz and /metrics (empty: none)")
	f.BoolVar(&o.leaderElect, "leader-elect", true, "act only while holding the Lease, so that one replica acts at a time")
	f.StringVar(&o.leader.Namespace, "leader-elect-namespace", "", "namespace of the Lease (default: $POD_NAMESPACE, else kube-system)")
	f.StringVar(&o.leader.Name, "leader-elect-name", "ning-rescheduler", "name of the Lease")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	o.sources.AddFlags(f)
}

func (o *reschedulerOptions) Validate() error {
	var errs []error
	if err := validLogLevel(o.logLevel); err != nil {
		errs = append(errs, err)
	}
	c := o.cfg
	c.SiteLabel = o.sources.siteLabel
	if err := c.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("rescheduler flags: %w", err))
	}
	if err := o.sources.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (o *reschedulerOptions) Config() (rescheduler.RunConfig, error) {
	r, err := o.sources.reader(o.logLevel, kubeFlags{kubeconfig: o.kubeconfig})
	if err != nil {
		return rescheduler.RunConfig{}, err
	}
	c := rescheduler.RunConfig{Client: r.client, Store: o.sources.store(), Sources: r.sources, Config: o.cfg,
		Listen: o.listen, Extra: legacyregistry.DefaultGatherer, Log: r.log}
	c.Config.SiteLabel = o.sources.siteLabel
	if o.leaderElect {
		lc := o.leader
		if lc.Namespace == "" {
			lc.Namespace = envOr("POD_NAMESPACE", "kube-system")
		}
		host, _ := os.Hostname()
		lc.Identity = host + "_" + uuid.NewString()
		c.Leader = &lc
	}
	return c, nil
}
