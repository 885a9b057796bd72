// Package demo runs the whole of ning on an embedded cluster: etcd and the
// real kube-apiserver in process, the real ReplicaSet, Deployment and
// disruption controllers, simulated kubelets (internal/nodesim), an embedded
// MQTT broker, and ning's own scheduler, rescheduler and discovery code
// paths, fed by simulated probers and gateway traffic. It deploys a workload,
// shifts most traffic to another site, takes a node down, and reports how
// ning did against kube-scheduler's default profile and the exact optimum.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/broker"
	"github.com/ning-edge/ning/internal/dashboard"
	"github.com/ning-edge/ning/internal/demo/netns"
	"github.com/ning-edge/ning/internal/devcluster"
	"github.com/ning-edge/ning/internal/discover"
	"github.com/ning-edge/ning/internal/httpserve"
	"github.com/ning-edge/ning/internal/mqtt"
	"github.com/ning-edge/ning/internal/nodesim"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/rescheduler"
	"github.com/ning-edge/ning/internal/scheduler"
	"github.com/ning-edge/ning/internal/source"
	"github.com/ning-edge/ning/internal/topology"
)

// Names the demo creates.
const (
	Namespace        = "demo"
	Workload         = "web"
	DefaultWorkload  = "web-default"
	gatewayNamespace = "ingress"
	jobNamespace     = "ning"
)

// Options configure a demo run.
type Options struct {
	// Spec is the topology: sites, their traffic and node counts, RTTs.
	Spec *topology.Spec
	// SpecName names it in the output.
	SpecName string
	// Replicas of the sample workload; default 6.
	Replicas int
	// PerReplicaRPS is the traffic one replica serves; 0 takes 1.25 times
	// the total traffic over the replicas.
	PerReplicaRPS float64
	// Duration bounds the whole run; default 3 minutes.
	Duration time.Duration
	// Interval is the rescheduler's cycle; default 2 s.
	Interval time.Duration
	// NodeDownAfter is the rescheduler's node-down delay; default 20 s.
	NodeDownAfter time.Duration
	// Seed makes the noise repeatable.
	Seed uint64
	// Out receives the live table and the summary.
	Out io.Writer
	// TableEvery is how often the live table prints; default 5 s.
	TableEvery time.Duration
	// Netns replaces the simulated probers with real ones that measure the
	// RTT between network namespaces, one per site, joined by links whose
	// emulated delay is the topology's RTT (package netns). It needs root,
	// iproute2, iptables and the kernel's NFQUEUE.
	Netns bool
	// NetnsBinary is the ning binary whose `ning demo netns-lab` runs the
	// namespaces and probers in a process of their own; default this
	// executable.
	NetnsBinary string
	// Dashboard is the address on which the dashboard (ning dashboard's
	// page) is served while the demo runs; a free port if it is taken; ""
	// serves none.
	Dashboard string
	// Messages receives the dashboard's address and the playground's
	// messages; nil drops them.
	Messages io.Writer
	// Keep leaves everything running after the scenario, as a playground,
	// until ctx ends: Duration then bounds only the scenario. Ended receives
	// the scenario's summary when it ends; Guide (default Messages) the
	// playground's KUBECONFIG line, dashboard address and commands to try.
	Keep  bool
	Ended func(*Summary) error
	Guide io.Writer
	Log   *slog.Logger
}

func (o *Options) defaults() error {
	if o.Spec == nil || len(o.Spec.Sites) < 2 {
		return errors.New("demo: a topology with at least two sites is needed")
	}
	if o.Replicas == 0 {
		o.Replicas = 6
	}
	if o.Replicas < 1 || o.Replicas > 100 {
		return fmt.Errorf("demo: %d replicas: want 1 to 100", o.Replicas)
	}
	total := 0.0
	for _, s := range o.Spec.Sites {
		total += s.Traffic
	}
	if total <= 0 {
		return errors.New("demo: the topology has no traffic at any site")
	}
	if o.PerReplicaRPS == 0 {
		o.PerReplicaRPS = math.Ceil(1.25 * total / float64(o.Replicas))
	}
	if o.PerReplicaRPS < 0 || math.IsNaN(o.PerReplicaRPS) || math.IsInf(o.PerReplicaRPS, 0) {
		return fmt.Errorf("demo: per-replica rate %v: want a positive number", o.PerReplicaRPS)
	}
	if o.Duration == 0 {
		o.Duration = 3 * time.Minute
	}
	if o.Interval == 0 {
		o.Interval = 2 * time.Second
	}
	if o.NodeDownAfter == 0 {
		o.NodeDownAfter = rescheduler.DefaultConfig().NodeDownAfter
	}
	if o.Duration < o.NodeDownAfter+30*time.Second {
		return fmt.Errorf("demo: --duration %v is too short: the node-loss phase alone needs --node-down-after (%v) and more", o.Duration, o.NodeDownAfter)
	}
	if o.TableEvery == 0 {
		o.TableEvery = 5 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Cluster is the running demo.
type Cluster struct {
	Client kubernetes.Interface
	Store  *topology.Store
	// Sites in topology order, their true RTT matrix and the scenario.
	Sites    []string
	RTT      [][]float64
	scenario *scenario
	o        *Options
	siteOf   map[string]string // node -> site
	sim      *nodesim.Simulator
	resched  *rescheduler.Metrics
	// ningView and defaultView are the dashboard's views of ning's pods and
	// of the default scheduler's: the live table is printed from them.
	ningView, defaultView *dashboard.Collector
	tableMu               sync.Mutex
	// What the playground prints, and its metrics.
	kubeconfig, brokerURL, dashboardURL string
	playMetrics                         *playgroundMetrics
	// comparison is the dashboard's ning / default / optimum view, nil
	// until computed.
	comparison atomic.Pointer[dashboard.Comparison]
}

// Placement counts the workload's running pods per site and how many of
// them are Ready; terminating pods do not count.
func (c *Cluster) Placement(ctx context.Context, name string) (perSite map[string]int, ready, total int, err error) {
	return devcluster.Placement(ctx, c.Client, Namespace, "app="+name, c.siteOf)
}

// MeanRTT is the weighted mean RTT (ms) of a placement under the true RTTs
// and the scenario's traffic now; an error when it is not known (no running
// replica, or traffic served over an unknown RTT), so that the planner's
// unknown-RTT penalty never reaches the summary as a figure.
func (c *Cluster) MeanRTT(workload string, perSite map[string]int) (float64, error) {
	ms, ok := policy.MeanRTT(c.problem(), policy.Current(c.Sites, perSite))
	if !ok {
		return 0, fmt.Errorf("the weighted RTT of %s running as %v is not known: no running replica, or traffic served over an unknown RTT", workload, perSite)
	}
	return ms, nil
}

func (c *Cluster) problem() *placement.Problem {
	p := policy.Problem(c.Sites, c.RTT, c.scenario.get(), c.o.PerReplicaRPS)
	p.Replicas = c.o.Replicas
	return p
}

// Optimum is the exact optimum's weighted mean RTT for the scenario now.
func (c *Cluster) Optimum(ctx context.Context) (float64, map[string]int, error) {
	p := c.problem()
	x, err := placement.Optimal(ctx, p)
	if err != nil {
		return 0, nil, err
	}
	return p.Cost(x), x.Map(c.Sites), nil
}

// Phase is one measured part of the summary.
type Phase struct {
	// NingMs, DefaultMs and OptimumMs are weighted mean RTTs in ms.
	NingMs    float64 `json:"ningMs"`
	DefaultMs float64 `json:"defaultSchedulerMs"`
	OptimumMs float64 `json:"optimumMs"`
	// Ning and Default are the placements per site.
	Ning    map[string]int `json:"ning"`
	Default map[string]int `json:"defaultScheduler"`
	Optimum map[string]int `json:"optimum"`
}

// Summary is what a demo run measured.
type Summary struct {
	Topology      string         `json:"topology"`
	Replicas      int            `json:"replicas"`
	PerReplicaRPS float64        `json:"perReplicaRPS"`
	Before        Phase          `json:"beforeShift"`
	After         Phase          `json:"afterShift"`
	ShiftFrom     string         `json:"shiftFrom"`
	ShiftTo       string         `json:"shiftTo"`
	ConvergeSec   float64        `json:"convergeSeconds"`
	Converged     bool           `json:"converged"`
	Evictions     float64        `json:"evictions"`
	LostNode      string         `json:"lostNode"`
	RecoverSec    float64        `json:"recoverSeconds"`
	Recovered     bool           `json:"recovered"`
	NodeDownAfter float64        `json:"nodeDownAfterSeconds"`
	Final         map[string]int `json:"finalPlacement"`
	// Probes compares the RTTs in the store at the end with the topology's.
	Probes   *RTTAccuracy `json:"measuredRTT,omitempty"`
	TotalSec float64      `json:"totalSeconds"`
}

// RTTAccuracy is how far the store's RTTs (the EWMA of the probers' means)
// are from the topology's, over every ordered pair of sites measured.
type RTTAccuracy struct {
	// Probers is "simulated" or "netns".
	Probers       string  `json:"probers"`
	Pairs         int     `json:"pairs"`
	MeanDiffMs    float64 `json:"meanDiffMs"`
	MeanAbsDiffMs float64 `json:"meanAbsDiffMs"`
	MaxAbsDiffMs  float64 `json:"maxAbsDiffMs"`
	// Worst is the pair furthest off, as "from -> to".
	Worst           string  `json:"worstPair"`
	WorstMeasuredMs float64 `json:"worstMeasuredMs"`
	WorstTopologyMs float64 `json:"worstTopologyMs"`
}

// rttAccuracy compares the store with the topology; nil when nothing was
// measured.
func (c *Cluster) rttAccuracy() *RTTAccuracy {
	a := &RTTAccuracy{Probers: "simulated"}
	if c.o.Netns {
		a.Probers = "netns"
	}
	var sum, sumAbs float64
	for i, from := range c.Sites {
		for j, to := range c.Sites {
			l, ok := c.Store.Link(from, to)
			if i == j || !ok || !c.Store.Fresh(l) || math.IsInf(c.RTT[i][j], 1) {
				continue
			}
			d := l.RTTMs - c.RTT[i][j]
			a.Pairs++
			sum += d
			sumAbs += math.Abs(d)
			if math.Abs(d) > a.MaxAbsDiffMs {
				a.MaxAbsDiffMs, a.Worst = math.Abs(d), from+" -> "+to
				a.WorstMeasuredMs, a.WorstTopologyMs = round2(l.RTTMs), c.RTT[i][j]
			}
		}
	}
	if a.Pairs == 0 {
		return nil
	}
	a.MeanDiffMs, a.MeanAbsDiffMs = round2(sum/float64(a.Pairs)), round2(sumAbs/float64(a.Pairs))
	a.MaxAbsDiffMs = round2(a.MaxAbsDiffMs)
	return a
}

// Run runs the demo until it is done or ctx ends, and returns the summary.
// Every component runs in one errgroup: the first to fail ends the demo with
// its error.
func Run(ctx context.Context, o Options) (sum *Summary, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	began := time.Now()
	if !o.Keep {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	// The network namespaces come first: a missing prerequisite fails
	// before the control plane starts.
	var lab *netns.Helper
	if o.Netns {
		if err := netns.Check(); err != nil {
			return nil, err
		}
		bin := o.NetnsBinary
		if bin == "" {
			if bin, err = os.Executable(); err != nil {
				return nil, fmt.Errorf("--netns: finding the ning binary for the helper: %w", err)
			}
		}
		if lab, err = netns.StartHelper(ctx, bin, o.Spec.SiteNames(), o.Spec.Matrix(), o.Log.With("component", "netns")); err != nil {
			return nil, err
		}
		o.Log.Info("network namespaces up", "sites", len(o.Spec.Sites), "links", lab.Links())
		defer func() {
			if cerr := lab.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}()
	}
	t0 := time.Now()
	cp, err := devcluster.Start(ctx, devcluster.Options{Log: o.Log.With("component", "devcluster")})
	if err != nil {
		return nil, fmt.Errorf("embedded control plane: %w", err)
	}
	// Everything in the group stops before the control plane and the
	// namespaces go.
	defer func() {
		if serr := cp.Stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the embedded control plane: %w", serr))
		}
	}()
	o.Log.Info("control plane up", "seconds", round1(time.Since(t0).Seconds()))
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	g, gctx := errgroup.WithContext(runCtx)
	c, err := start(gctx, g, cp, &o, lab)
	if err == nil {
		g.Go(func() error { return c.liveTable(gctx) })
		g.Go(func() error {
			// The scenario's end (the playground's, with Keep) ends every
			// component.
			defer stop()
			sctx, cancel := context.WithTimeout(gctx, o.Duration)
			defer cancel()
			var serr error
			sum, serr = c.scenarioRun(sctx)
			if sum != nil {
				// Measured when the scenario ends, before the components stop.
				sum.Probes = c.rttAccuracy()
				sum.TotalSec = round1(time.Since(began).Seconds())
			}
			if serr != nil || !o.Keep {
				return serr
			}
			if o.Ended != nil {
				if err := o.Ended(sum); err != nil {
					return err
				}
			}
			return c.playground(gctx)
		})
	} else {
		stop()
	}
	err = errors.Join(err, g.Wait()) // sum is written by the scenario's goroutine
	return sum, err
}

// start builds every ning component on the cluster and runs each in g.
func start(ctx context.Context, g *errgroup.Group, cp *devcluster.Cluster, o *Options, lab *netns.Helper) (*Cluster, error) {
	log := o.Log
	t0 := time.Now()
	c := &Cluster{Client: cp.Client, Sites: o.Spec.SiteNames(), RTT: o.Spec.Matrix(),
		scenario: &scenario{}, o: o, siteOf: map[string]string{}, kubeconfig: cp.Kubeconfig}
	initial := map[string]float64{}
	for _, s := range o.Spec.Sites {
		initial[s.Name] = s.Traffic
	}
	c.scenario.set(initial)
	reg := prometheus.NewRegistry()
	g.Go(func() error { return cp.RunControllers(ctx) })

	// The MQTT broker, and the store fed from it as the scheduler's is.
	b, err := broker.New(broker.Config{Listen: "127.0.0.1:0", AllowAnonymous: true}, log.With("component", "broker"))
	if err != nil {
		return nil, err
	}
	if err := b.Start(); err != nil {
		return nil, err
	}
	g.Go(func() error { return b.Run(ctx) })
	brokerURL := "mqtt://" + b.Addr()
	c.brokerURL = brokerURL
	if c.playMetrics, err = newPlaygroundMetrics(reg); err != nil {
		return nil, err
	}
	c.Store = topology.NewStore(topology.Config{}, clock.RealClock{})
	src, err := source.NewMQTT(c.Store, source.Config{}, clock.RealClock{}, reg, log.With("component", "source"))
	if err != nil {
		return nil, err
	}
	sub, err := mqtt.NewSubscriber(ctx, mqtt.Config{BrokerURL: brokerURL, ClientID: "ning-demo-store"}, mqtt.SubscriberOptions{}, src.Handle, reg, log.With("component", "subscriber"))
	if err != nil {
		return nil, fmt.Errorf("MQTT subscriber: %w", err)
	}
	g.Go(func() error { return closeWhenDone(ctx, "MQTT subscriber", sub.Close) })

	// Nodes with simulated kubelets, and a gateway pod per site.
	c.sim = nodesim.New(cp.Client, nodesim.Options{RenewInterval: 2 * time.Second, StartDelay: 500 * time.Millisecond}, log.With("component", "nodesim"))
	gateways := map[string]string{}
	for _, s := range o.Spec.Sites {
		for i := range max(s.Nodes, 1) {
			name := fmt.Sprintf("%s-%d", s.Name, i)
			if err := c.sim.AddNode(ctx, nodesim.Node{Name: name, Site: s.Name, CPU: "4", Memory: "16Gi"}); err != nil {
				return nil, err
			}
			c.siteOf[name] = s.Name
		}
		gateways[s.Name] = s.Name + "-0"
	}
	g.Go(func() error { return c.sim.Run(ctx) })
	for _, ns := range []string{Namespace, gatewayNamespace, jobNamespace} {
		if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	for site, node := range gateways {
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "gateway-" + site, Namespace: gatewayNamespace,
				Labels: map[string]string{"app.kubernetes.io/name": "traefik"}},
			Spec: v1.PodSpec{NodeName: node, Containers: []v1.Container{{Name: "traefik", Image: "traefik:v3.2"}}},
		}
		if _, err := cp.Client.CoreV1().Pods(gatewayNamespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("creating the gateway of %s: %w", site, err)
		}
	}

	// Probers, one per site, publishing to the broker: with --netns real
	// ones in the helper process, inside the site namespaces (their MQTT
	// clients stay in the root namespace, where the broker listens on
	// 127.0.0.1); simulated ones otherwise.
	rng := rand.New(rand.NewPCG(o.Seed, 1))
	if lab != nil {
		if err := lab.Probe(brokerURL); err != nil {
			return nil, err
		}
	}
	for i, s := range c.Sites {
		if lab != nil {
			break
		}
		targets := map[string]float64{}
		for j, t := range c.Sites {
			if j != i && !math.IsInf(c.RTT[i][j], 1) {
				targets[t] = c.RTT[i][j]
			}
		}
		pub, err := mqtt.NewPublisher(ctx, mqtt.Config{BrokerURL: brokerURL, ClientID: "ning-probe-" + s}, mqtt.PublisherOptions{}, prometheus.NewRegistry(), log)
		if err != nil {
			return nil, fmt.Errorf("prober %s: %w", s, err)
		}
		p := &prober{site: s, node: s + "-0", targets: targets, pub: pub, period: time.Second,
			rng: rand.New(rand.NewPCG(rng.Uint64(), uint64(i))), log: log}
		g.Go(func() error {
			p.run(ctx)
			return closeWhenDone(ctx, "prober "+s+" publisher", discard(pub, log))
		})
	}

	// Discovery: gateway traffic in, TrafficReports out to the broker.
	dpub, err := mqtt.NewPublisher(ctx, mqtt.Config{BrokerURL: brokerURL, ClientID: "ning-discover"}, mqtt.PublisherOptions{}, prometheus.NewRegistry(), log)
	if err != nil {
		return nil, fmt.Errorf("discover publisher: %w", err)
	}
	dm, err := discover.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	d, err := discover.New(discover.Config{Client: cp.Client, Cluster: discover.ClusterOptions{GatewayNamespace: gatewayNamespace},
		Source:    &trafficSource{scenario: c.scenario, gateways: gateways, window: 2 * time.Second, rng: rand.New(rand.NewPCG(rng.Uint64(), 99))},
		Publisher: dpub, Job: discover.JobOptions{Namespace: jobNamespace}, Log: log.With("component", "discover"), Metrics: dm})
	if err != nil {
		return nil, errors.Join(err, dpub.Close(context.WithoutCancel(ctx)))
	}
	g.Go(func() error {
		return errors.Join(d.Run(ctx, time.Second, nil), closeWhenDone(ctx, "discover publisher", discard(dpub, log)))
	})

	// ning's scheduler (with the default profile beside it, for comparison)
	// and rescheduler.
	cfg, err := scheduler.DefaultConfig(scheduler.ConfigParams{Kubeconfig: cp.Kubeconfig, DefaultProfile: true, PerReplicaRPS: o.PerReplicaRPS})
	if err != nil {
		return nil, err
	}
	scheduled, err := scheduler.Start(ctx, cp.Dir, cfg, c.Store)
	if err != nil {
		return nil, err
	}
	g.Go(func() error { return scheduler.Wait(ctx, scheduled) })
	rc := rescheduler.DefaultConfig()
	rc.Interval, rc.HoldCycles, rc.PerReplicaRPS, rc.NodeDownAfter = o.Interval, 2, o.PerReplicaRPS, o.NodeDownAfter
	// The demo's time runs fast: one cycle of cooldown after a move, not
	// the default's two minutes.
	rc.MoveCooldown = o.Interval
	if c.resched, err = rescheduler.NewMetrics(reg); err != nil {
		return nil, err
	}
	r, err := rescheduler.New(cp.Client, c.Store, rc, c.resched, log.With("component", "rescheduler"), clock.RealClock{})
	if err != nil {
		return nil, err
	}
	g.Go(func() error { return r.Run(ctx) })

	// The dashboard's collectors: ning's pods (served on o.Dashboard, and
	// the live table) and the default scheduler's (the table's comparison).
	if c.ningView, err = dashboard.NewCollector(cp.Client, c.Store, dashboard.Options{PerReplicaRPS: o.PerReplicaRPS, Interval: o.TableEvery}); err != nil {
		return nil, err
	}
	if c.defaultView, err = dashboard.NewCollector(cp.Client, c.Store, dashboard.Options{PerReplicaRPS: o.PerReplicaRPS, Interval: o.TableEvery,
		SchedulerName: v1.DefaultSchedulerName}); err != nil {
		return nil, err
	}
	g.Go(func() error { return c.ningView.Run(ctx) })
	g.Go(func() error { return c.defaultView.Run(ctx) })
	if o.Dashboard != "" {
		ln, err := httpserve.ListenOrFree(o.Dashboard)
		if err != nil {
			return nil, fmt.Errorf("--dashboard: %w", err)
		}
		// /metrics: the demo's components' metrics (discovery, the
		// store's source, the rescheduler, the playground's traffic).
		mux := httpserve.OpsMux(reg, c.ningView.Healthy)
		mux.Handle("/", dashboard.Handler(&comparedView{view: c.ningView, cluster: c}))
		g.Go(func() error { return c.compareEvery(ctx, dashboard.RefreshInterval) })
		g.Go(func() error { return httpserve.Serve(ctx, "dashboard", ln, mux, httpserve.Options{}, log) })
		c.dashboardURL = fmt.Sprintf("http://%s/", ln.Addr())
		if o.Messages != nil {
			_, _ = fmt.Fprintf(o.Messages, "dashboard: %s (while the demo runs)\n", c.dashboardURL)
		}
	}
	log.Info("ning is running", "sites", len(c.Sites), "nodes", len(c.siteOf), "seconds", round1(time.Since(t0).Seconds()))
	return c, nil
}

// closeWhenDone waits for ctx to end, then closes what close closes,
// with a few seconds to do so.
func closeWhenDone(ctx context.Context, what string, close func(context.Context) error) error {
	<-ctx.Done()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := close(cctx); err != nil {
		return fmt.Errorf("closing the %s: %w", what, err)
	}
	return nil
}

// discard is how the demo closes a publisher: its broker and its store stop
// on the same cancel, so a report still queued then has no reader left, and
// dropping it is no error (flushing would race the broker's own shutdown).
func discard(pub *mqtt.Publisher, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		n, err := pub.Discard(ctx)
		if n > 0 {
			log.Debug("dropped reports queued at shutdown", "reports", n)
		}
		return err
	}
}

// say prints a line between live tables; the output is for a person, so
// a failed write is not an error of the demo.
func (c *Cluster) say(format string, args ...any) {
	c.tableMu.Lock()
	defer c.tableMu.Unlock()
	_, _ = fmt.Fprintf(c.o.Out, format, args...)
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// deploy creates the sample workload twice, once for ning and once for the
// default scheduler, with a PodDisruptionBudget on ning's.
func (c *Cluster) deploy(ctx context.Context) error {
	for _, w := range []struct{ name, scheduler string }{{Workload, scheduler.ProfileName}, {DefaultWorkload, v1.DefaultSchedulerName}} {
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: w.name, Namespace: Namespace},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To(int32(c.o.Replicas)),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": w.name}},
				Template: v1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": w.name}},
					Spec: v1.PodSpec{SchedulerName: w.scheduler, Containers: []v1.Container{{
						Name: "app", Image: "registry.example/web:1",
						Resources: v1.ResourceRequirements{Requests: v1.ResourceList{
							v1.ResourceCPU: resource.MustParse("100m"), v1.ResourceMemory: resource.MustParse("64Mi")}},
					}}},
				},
			},
		}
		if _, err := c.Client.AppsV1().Deployments(Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating deployment %s: %w", w.name, err)
		}
	}
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: Workload, Namespace: Namespace},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": Workload}}},
	}
	if _, err := c.Client.PolicyV1().PodDisruptionBudgets(Namespace).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the PodDisruptionBudget: %w", err)
	}
	return nil
}

// waitFor polls cond every 250 ms until it holds or ctx ends.
func waitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// allReady reports whether the workload runs its replicas, all Ready.
func (c *Cluster) allReady(ctx context.Context, name string) (map[string]int, bool, error) {
	perSite, ready, total, err := c.Placement(ctx, name)
	return perSite, ready == c.o.Replicas && total == c.o.Replicas, err
}

func (c *Cluster) measure(ctx context.Context) (Phase, error) {
	var ph Phase
	var err error
	if ph.Ning, _, _, err = c.Placement(ctx, Workload); err != nil {
		return ph, err
	}
	if ph.Default, _, _, err = c.Placement(ctx, DefaultWorkload); err != nil {
		return ph, err
	}
	if ph.OptimumMs, ph.Optimum, err = c.Optimum(ctx); err != nil {
		return ph, err
	}
	if ph.NingMs, err = c.MeanRTT(Workload, ph.Ning); err != nil {
		return ph, err
	}
	if ph.DefaultMs, err = c.MeanRTT(DefaultWorkload, ph.Default); err != nil {
		return ph, err
	}
	ph.NingMs, ph.DefaultMs, ph.OptimumMs = round2(ph.NingMs), round2(ph.DefaultMs), round2(ph.OptimumMs)
	return ph, nil
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// shiftTarget picks where the traffic goes: the site with traffic that is
// farthest from the busiest one.
func (c *Cluster) shiftTarget() (from, to string) {
	t := c.scenario.get()
	bi := 0
	for i, s := range c.Sites {
		if t[s] > t[c.Sites[bi]] {
			bi = i
		}
	}
	ti := -1
	for j, s := range c.Sites {
		if j != bi && t[s] > 0 && (ti < 0 || c.RTT[bi][j] > c.RTT[bi][ti]) {
			ti = j
		}
	}
	if ti < 0 {
		for j := range c.Sites {
			if j != bi && (ti < 0 || c.RTT[bi][j] > c.RTT[bi][ti]) {
				ti = j
			}
		}
	}
	return c.Sites[bi], c.Sites[ti]
}

// scenarioRun deploys, shifts traffic, loses a node, and measures.
func (c *Cluster) scenarioRun(ctx context.Context) (*Summary, error) {
	o, log := c.o, c.o.Log
	s := &Summary{Topology: o.SpecName, Replicas: o.Replicas, PerReplicaRPS: o.PerReplicaRPS, NodeDownAfter: o.NodeDownAfter.Seconds()}
	// Wait for the first measurements and traffic to reach the store.
	if err := waitFor(ctx, "the first RTT and traffic reports", func() (bool, error) {
		total := 0.0
		for _, v := range c.Store.Traffic() {
			total += v
		}
		_, known := c.Store.RTT(c.Sites[0], c.Sites[1])
		return total > 0 && known, nil
	}); err != nil {
		return nil, err
	}
	c.say("ning demo: %d sites, %d nodes; deploying %s (%d replicas, ning-scheduler) and %s (default-scheduler)\n",
		len(c.Sites), len(c.siteOf), Workload, o.Replicas, DefaultWorkload)
	if err := c.deploy(ctx); err != nil {
		return nil, err
	}
	for _, w := range []string{Workload, DefaultWorkload} {
		if err := waitFor(ctx, w+" Ready", func() (bool, error) { _, ok, err := c.allReady(ctx, w); return ok, err }); err != nil {
			return nil, err
		}
	}
	var err error
	if s.Before, err = c.measure(ctx); err != nil {
		return nil, err
	}
	log.Info("deployed", "ning", s.Before.Ning, "default", s.Before.Default)
	c.printTable(ctx)

	// Shift most traffic from the busiest site to the farthest site with traffic.
	s.ShiftFrom, s.ShiftTo = c.shiftTarget()
	t := c.scenario.get()
	moved := 0.8 * t[s.ShiftFrom]
	t[s.ShiftFrom] -= moved
	t[s.ShiftTo] += moved
	c.say("\n>>> shifting %.0f req/s of traffic from %s to %s\n\n", moved, s.ShiftFrom, s.ShiftTo)
	evBefore := c.evictions()
	shiftAt := time.Now()
	c.scenario.set(t)
	// Converged: the placement has not changed for 4 cycles (and the new
	// traffic has reached the store), all Ready.
	stable := 4 * o.Interval
	shiftCtx, cancel := context.WithTimeout(ctx, o.Duration/2)
	defer cancel()
	last, lastChange := map[string]int(nil), shiftAt
	err = waitFor(shiftCtx, "the placement to settle after the shift", func() (bool, error) {
		perSite, ok, err := c.allReady(shiftCtx, Workload)
		if err != nil || !ok {
			return false, err
		}
		if !equal(perSite, last) {
			last, lastChange = perSite, time.Now()
		}
		return c.Store.Traffic()[s.ShiftTo] >= 0.9*t[s.ShiftTo] && time.Since(lastChange) >= stable && time.Since(shiftAt) >= stable, nil
	})
	s.Converged = err == nil
	if err != nil && ctx.Err() != nil {
		return s, err
	}
	s.ConvergeSec = round1(lastChange.Sub(shiftAt).Seconds())
	s.Evictions = c.evictions() - evBefore
	if s.After, err = c.measure(ctx); err != nil {
		return s, err
	}
	c.printTable(ctx)

	// Lose the node running most of ning's replicas.
	victim, err := c.busiestNode(ctx)
	if err != nil {
		return s, err
	}
	s.LostNode = victim
	c.say("\n>>> node %s stops (power off): no more heartbeats\n\n", victim)
	lostAt := time.Now()
	c.sim.Stop(victim)
	err = waitFor(ctx, "the replicas to run elsewhere", func() (bool, error) {
		ready, onNode, err := devcluster.ReadyAway(ctx, c.Client, Namespace, "app="+Workload, victim)
		return !onNode && ready == o.Replicas, err
	})
	s.Recovered = err == nil
	s.RecoverSec = round1(time.Since(lostAt).Seconds())
	if err != nil {
		return s, err
	}
	c.printTable(ctx)
	if err := c.sim.Resume(ctx, victim); err != nil {
		return s, err
	}
	s.Final, _, _, err = c.Placement(ctx, Workload)
	return s, err
}

func equal(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func (c *Cluster) evictions() float64 {
	total := 0.0
	for _, reason := range []string{"traffic", "delay_violation"} {
		total += counterValue(c.resched.Evictions.WithLabelValues(reason, "evicted"))
	}
	return total
}

func (c *Cluster) busiestNode(ctx context.Context) (string, error) {
	list, err := c.Client.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + Workload})
	if err != nil {
		return "", err
	}
	count := map[string]int{}
	for _, p := range list.Items {
		if p.Spec.NodeName != "" {
			count[p.Spec.NodeName]++
		}
	}
	nodes := make([]string, 0, len(count))
	for n := range count {
		nodes = append(nodes, n)
	}
	if len(nodes) == 0 {
		return "", errors.New("no node runs the workload")
	}
	sort.Slice(nodes, func(i, j int) bool {
		if count[nodes[i]] != count[nodes[j]] {
			return count[nodes[i]] > count[nodes[j]]
		}
		return nodes[i] < nodes[j]
	})
	return nodes[0], nil
}
