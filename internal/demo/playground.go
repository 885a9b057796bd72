package demo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/ning-edge/ning/internal/dashboard"
	"github.com/ning-edge/ning/internal/explain"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/scheduler"
)

// The playground (Options.Keep): after the scenario the cluster stays up,
// and the traffic entering at each site is the ConfigMap TrafficConfigMap in
// TrafficNamespace, one key per site holding req/s. `ning demo traffic set`
// (SetTraffic) and `kubectl edit` change it; the demo reads it every
// trafficPoll and keeps the last good traffic when it is not valid.
const (
	TrafficNamespace = jobNamespace
	TrafficConfigMap = "demo-traffic"
	// ExampleWorkload is the Deployment of the playground's example manifest.
	ExampleWorkload = "mine"
	trafficPoll     = time.Second
)

// ParseTraffic reads the traffic ConfigMap's data: each key a site of sites,
// each value a finite number of req/s of 0 or more, some of them above 0. A
// site without a key has no traffic.
func ParseTraffic(data map[string]string, sites []string) (map[string]float64, error) {
	known := make(map[string]bool, len(sites))
	for _, s := range sites {
		known[s] = true
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]float64, len(sites))
	var errs []error
	total := 0.0
	for _, site := range keys {
		v, err := parseRate(data[site])
		switch {
		case !known[site]:
			errs = append(errs, fmt.Errorf("%q is not a site of the topology (sites: %s)", site, strings.Join(sites, ", ")))
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", site, err))
		default:
			out[site] = v
			total += v
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if total <= 0 {
		return nil, errors.New("no site has traffic: give at least one a rate above 0")
	}
	return out, nil
}

func parseRate(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, fmt.Errorf("%q: want req/s, a finite number of 0 or more", s)
	}
	return v, nil
}

// ParseAssignments reads `ning demo traffic set`'s arguments, SITE=RPS each.
func ParseAssignments(args []string) (map[string]float64, error) {
	if len(args) == 0 {
		return nil, errors.New("no SITE=RPS given")
	}
	out := map[string]float64{}
	var errs []error
	for _, a := range args {
		site, rate, ok := strings.Cut(a, "=")
		if !ok || site == "" {
			errs = append(errs, fmt.Errorf("%q: want SITE=RPS, e.g. airport=500", a))
			continue
		}
		v, err := parseRate(rate)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", site, err))
			continue
		}
		if _, dup := out[site]; dup {
			errs = append(errs, fmt.Errorf("%s given twice", site))
			continue
		}
		out[site] = v
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// SetTraffic sets the playground's traffic at the sites of set, leaving the
// others as they are, and returns the traffic of every site. It checks the
// result as the demo does (ParseTraffic, the ConfigMap's keys being the
// sites), so bad input is refused here and never reaches the demo.
func SetTraffic(ctx context.Context, client kubernetes.Interface, set map[string]float64) (map[string]float64, error) {
	var traffic map[string]float64
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cms := client.CoreV1().ConfigMaps(TrafficNamespace)
		cm, err := cms.Get(ctx, TrafficConfigMap, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("no playground on this cluster (ConfigMap %s/%s not found): run ning demo --keep, and use the kubeconfig it prints once it says KUBECONFIG=", TrafficNamespace, TrafficConfigMap)
		}
		if err != nil {
			return fmt.Errorf("reading ConfigMap %s/%s: %w", TrafficNamespace, TrafficConfigMap, err)
		}
		sites := make([]string, 0, len(cm.Data))
		data := make(map[string]string, len(cm.Data))
		for k, v := range cm.Data {
			sites = append(sites, k)
			data[k] = v
		}
		sort.Strings(sites)
		for site, v := range set {
			data[site] = strconv.FormatFloat(v, 'f', -1, 64)
		}
		if traffic, err = ParseTraffic(data, sites); err != nil {
			return err
		}
		cm.Data = data
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return traffic, nil
}

// trafficData is the ConfigMap data for the traffic t at sites.
func trafficData(t map[string]float64, sites []string) map[string]string {
	data := make(map[string]string, len(sites))
	for _, s := range sites {
		data[s] = strconv.FormatFloat(math.Round(t[s]*10)/10, 'f', -1, 64)
	}
	return data
}

// playgroundMetrics counts the traffic ConfigMap's versions by outcome.
type playgroundMetrics struct {
	updates *prometheus.CounterVec
}

func newPlaygroundMetrics(reg prometheus.Registerer) (*playgroundMetrics, error) {
	m := &playgroundMetrics{updates: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ning_demo_traffic_updates_total",
		Help: "Versions of the playground's traffic ConfigMap read, by result: applied, or rejected (the traffic stays as it was).",
	}, []string{"result"})}
	if err := reg.Register(m.updates); err != nil {
		return nil, fmt.Errorf("registering the playground's metrics: %w", err)
	}
	return m, nil
}

// playground keeps everything running after the scenario until ctx ends:
// it writes the traffic ConfigMap and the example manifest, prints how to
// use the cluster, then applies the ConfigMap's traffic as it changes.
func (c *Cluster) playground(ctx context.Context) error {
	cms := c.Client.CoreV1().ConfigMaps(TrafficNamespace)
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: TrafficConfigMap, Namespace: TrafficNamespace},
		Data: trafficData(c.scenario.get(), c.Sites)}
	cm, err := cms.Create(ctx, cm, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating the traffic ConfigMap: %w", err)
	}
	manifest, note, err := c.writeExample()
	if err != nil {
		return err
	}
	c.guide(manifest, note)
	seen := cm.ResourceVersion
	t := time.NewTicker(trafficPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cm, err := cms.Get(ctx, TrafficConfigMap, metav1.GetOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Deleted or unreadable: the traffic stays; say so once per state.
			if seen != "" {
				c.o.Log.Warn("playground: reading the traffic ConfigMap; the traffic stays as it was", "err", err)
				seen = ""
			}
			continue
		}
		if cm.ResourceVersion == seen {
			continue
		}
		seen = cm.ResourceVersion
		traffic, err := ParseTraffic(cm.Data, c.Sites)
		if err != nil {
			c.playMetrics.updates.WithLabelValues("rejected").Inc()
			c.message("playground: ConfigMap %s/%s rejected, the traffic stays as it was: %v\n", TrafficNamespace, TrafficConfigMap, oneLine(err.Error()))
			continue
		}
		c.playMetrics.updates.WithLabelValues("applied").Inc()
		c.scenario.set(traffic)
		c.message("playground: traffic now %s\n", formatTraffic(traffic, c.Sites))
	}
}

// message prints a line of the playground's to Options.Messages.
func (c *Cluster) message(format string, args ...any) {
	if c.o.Messages == nil {
		return
	}
	c.tableMu.Lock()
	defer c.tableMu.Unlock()
	_, _ = fmt.Fprintf(c.o.Messages, format, args...)
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// formatTraffic lists the traffic of each site in topology order.
func formatTraffic(t map[string]float64, sites []string) string {
	parts := make([]string, 0, len(sites))
	for _, s := range sites {
		parts = append(parts, fmt.Sprintf("%s=%g", s, math.Round(t[s]*10)/10))
	}
	return strings.Join(parts, " ")
}

// exampleSite is the site of the example's delay constraint: the one with
// the least traffic above 0 when the topology was read, and its limit: the
// RTT to its second-nearest site, so that it and its two nearest sites
// qualify (fewer when RTTs tie or are unknown).
func (c *Cluster) exampleSite() (string, float64) {
	from := -1
	for i, s := range c.o.Spec.Sites {
		if s.Traffic > 0 && (from < 0 || s.Traffic < c.o.Spec.Sites[from].Traffic) {
			from = i
		}
	}
	var rtts []float64
	for j, v := range c.RTT[from] {
		if j != from && !math.IsInf(v, 1) {
			rtts = append(rtts, v)
		}
	}
	sort.Float64s(rtts)
	limit := 1.0
	if len(rtts) > 0 {
		limit = rtts[min(1, len(rtts)-1)]
	}
	return c.Sites[from], limit
}

// exampleManifest is a Deployment of two replicas on ning-scheduler that must
// run within limitMs of site.
func exampleManifest(site string, limitMs float64) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  replicas: 2
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels:
        app: %[1]s
        # run within %[4]g ms of %[3]s (ning's NetworkLatency filter)
        delay_%[3]s: "%[4]g"
    spec:
      schedulerName: %[5]s
      containers:
        - name: app
          image: registry.example/mine:1
          resources:
            requests: {cpu: 100m, memory: 64Mi}
`, ExampleWorkload, Namespace, site, limitMs, scheduler.ProfileName)
}

// writeExample writes the example manifest beside the kubeconfig and returns
// its path and what it asks for.
func (c *Cluster) writeExample() (file, note string, err error) {
	site, limit := c.exampleSite()
	file = filepath.Join(filepath.Dir(c.kubeconfig), ExampleWorkload+".yaml")
	if err := os.WriteFile(file, []byte(exampleManifest(site, limit)), 0o600); err != nil {
		return "", "", fmt.Errorf("writing the example manifest: %w", err)
	}
	return file, fmt.Sprintf("2 replicas on %s within %g ms of %s", scheduler.ProfileName, limit, site), nil
}

// guide prints how to use the playground to Options.Guide: the KUBECONFIG
// line on its own, the dashboard, and commands to try.
func (c *Cluster) guide(manifest, note string) {
	w := c.o.Guide
	if w == nil {
		w = c.o.Messages
	}
	if w == nil {
		return
	}
	site, _ := c.exampleSite()
	dash := "none (--dashboard is empty)"
	if c.dashboardURL != "" {
		dash = c.dashboardURL
	}
	c.tableMu.Lock()
	defer c.tableMu.Unlock()
	_, _ = fmt.Fprintf(w, `
playground: the cluster, probers, traffic, scheduler, rescheduler and dashboard keep running until Ctrl-C
KUBECONFIG=%s
dashboard: %s
try, with that KUBECONFIG exported:
  kubectl apply -f %s    # %s
  ning demo traffic set %s=500    # or kubectl -n %s edit configmap %s
  ning explain deployment %s/%s --per-replica-rps %g --mqtt --broker %s
`, c.kubeconfig, dash, manifest, note, site, TrafficNamespace, TrafficConfigMap, Namespace, ExampleWorkload, c.o.PerReplicaRPS, c.brokerURL)
}

// comparedView is the dashboard's view of ning's pods with the demo's
// comparison of ning, the default scheduler and the optimum.
type comparedView struct {
	view    *dashboard.Collector
	cluster *Cluster
}

func (v *comparedView) Snapshot() dashboard.Snapshot {
	s := v.view.Snapshot()
	s.Comparison = v.cluster.comparison.Load()
	return s
}

// compareEvery computes the dashboard's comparison every period until ctx
// ends.
func (c *Cluster) compareEvery(ctx context.Context, period time.Duration) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		cmp, err := c.compare(ctx)
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("the dashboard's comparison: %w", err)
		}
		c.comparison.Store(cmp)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// compare models ning's placement of the demo's workload, the default
// scheduler's and the exact optimum's under the topology's RTTs and the
// traffic now (policy.MeanRTT: nil where it cannot be told, never a
// penalty).
func (c *Cluster) compare(ctx context.Context) (*dashboard.Comparison, error) {
	p := c.problem()
	cmp := &dashboard.Comparison{Workload: Namespace + "/" + Workload,
		Basis: "Modelled: the topology's RTTs and the traffic now, each site's traffic going to its nearest replica with room (the cost the planner and the optimum are judged by)."}
	row := func(name string, perSite map[string]int) {
		r := dashboard.CompareRow{Name: name, Placement: perSite}
		x := policy.Current(c.Sites, perSite)
		if x.Total() > 0 {
			if v, known := policy.MeanRTT(p, x); known {
				v = round2(v)
				r.WeightedRTTMs = &v
			}
		}
		cmp.Rows = append(cmp.Rows, r)
	}
	for _, w := range []struct{ name, workload string }{{dashboard.CompareNing, Workload}, {dashboard.CompareDefault, DefaultWorkload}} {
		perSite, _, _, err := c.Placement(ctx, w.workload)
		if err != nil {
			return nil, err
		}
		row(w.name, perSite)
	}
	x, err := placement.Optimal(ctx, p)
	if err != nil {
		return nil, err
	}
	row(dashboard.CompareOptimum, x.Map(c.Sites))
	return cmp, nil
}

// Explain is the dashboard's workload page: ning explain's table for the
// Deployment or pod, from the demo's store (explain.Pages, as ning dashboard
// serves it).
func (v *comparedView) Explain(ctx context.Context, kind, namespace, name string) (string, error) {
	c := v.cluster
	return explain.Pages{View: dashboard.View{Client: c.Client, Store: c.Store, Options: dashboard.Options{PerReplicaRPS: c.o.PerReplicaRPS}}}.
		Explain(ctx, kind, namespace, name)
}
