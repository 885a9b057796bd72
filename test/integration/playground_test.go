package integration

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ning-edge/ning/examples"
	"github.com/ning-edge/ning/internal/dashboard"
	"github.com/ning-edge/ning/internal/demo"
	"github.com/ning-edge/ning/internal/logging/logtest"
	"github.com/ning-edge/ning/internal/topology"
)

// TestPlayground runs `ning demo --keep`: after the scenario the cluster
// stays up and prints its KUBECONFIG, dashboard and commands; a user's
// Deployment (the example manifest it wrote, with its delay_<site> label) is
// placed by ning within its limit; `ning demo traffic set` changes the
// traffic the store sees, bad input is refused by it and, written to the
// ConfigMap directly, rejected by the demo without losing the traffic; and
// cancelling (Ctrl-C) stops everything and removes the cluster's files.
func TestPlayground(t *testing.T) {
	if testing.Short() {
		t.Skip("the playground runs the demo's scenario first, about a minute: skipped in -short (make test-integration runs it)")
	}
	spec, err := topology.ParseSpec(examples.EdgeCity)
	if err != nil {
		t.Fatal(err)
	}
	var out, guide, messages logtest.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	runCtx, interrupt := context.WithCancel(ctx)
	done := make(chan playResult, 1)
	var ended *demo.Summary
	go func() {
		sum, err := demo.Run(runCtx, demo.Options{Spec: spec, SpecName: "edge-city", Out: &out, Seed: 1, Keep: true,
			Dashboard: "127.0.0.1:0", Messages: &messages, Guide: &guide,
			Ended: func(s *demo.Summary) error { ended = s; return nil }})
		done <- playResult{sum, err}
	}()
	defer func() {
		interrupt()
		<-done
	}()

	// The guide: KUBECONFIG on a line of its own, the dashboard, the commands.
	var kubeconfig, dashURL, manifest string
	waitText(ctx, t, done, "the playground's KUBECONFIG line", func() bool {
		g := guide.String()
		m := regexp.MustCompile(`(?m)^KUBECONFIG=(\S+)$`).FindStringSubmatch(g)
		d := regexp.MustCompile(`(?m)^dashboard: (http://\S+)$`).FindStringSubmatch(g)
		f := regexp.MustCompile(`kubectl apply -f (\S+)`).FindStringSubmatch(g)
		if m == nil || d == nil || f == nil {
			return false
		}
		kubeconfig, dashURL, manifest = m[1], d[1], f[1]
		return true
	})
	t.Logf("guide:%s", guide.String())
	if ended == nil || !ended.Recovered {
		t.Errorf("the scenario's summary before the playground: %+v", ended)
	}
	for _, cmd := range []string{"ning demo traffic set north-suburb=500", "ning explain deployment demo/mine --per-replica-rps ", " --mqtt --broker mqtt://127.0.0.1:"} {
		if !strings.Contains(guide.String(), cmd) {
			t.Errorf("the guide lacks %q", cmd)
		}
	}

	// The user's client, from the printed kubeconfig only.
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(data, nil, nil)
	if err != nil {
		t.Fatalf("the example manifest %s: %v", manifest, err)
	}
	d := obj.(*appsv1.Deployment)
	if _, err := client.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const from = "north-suburb"
	limit, err := strconv.ParseFloat(d.Spec.Template.Labels["delay_"+from], 64)
	if err != nil {
		t.Fatalf("the example's delay_%s label: %v (labels %v)", from, err, d.Spec.Template.Labels)
	}
	names, rtt := spec.SiteNames(), spec.Matrix()
	idx := map[string]int{}
	for i, s := range names {
		idx[s] = i
	}
	// Placed: both replicas bound, each on a site within the limit.
	var sites []string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := client.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + d.Name})
		if err != nil {
			return false, err
		}
		sites = sites[:0]
		for _, p := range pods.Items {
			if p.Spec.NodeName == "" {
				return false, nil
			}
			n, err := client.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			sites = append(sites, n.Labels[topology.DefaultSiteLabel])
		}
		return len(sites) == 2, nil
	})
	if err != nil {
		t.Fatalf("the user's Deployment was not placed: %v (sites so far %v)", err, sites)
	}
	for _, s := range sites {
		i, ok := idx[s]
		if !ok || rtt[idx[from]][i] > limit {
			t.Errorf("a replica of %s runs at %q, beyond %g ms of %s", d.Name, s, limit, from)
		}
	}
	t.Logf("%s placed at %v (delay_%s: %g)", d.Name, sites, from, limit)

	// The dashboard's page for it is ning explain's, from the demo's store.
	explained := get(t, dashURL+"explain/deployment/"+d.Namespace+"/"+d.Name)
	if !strings.Contains(explained, "delay constraints (unknown RTTs FailClosed): delay_"+from) {
		t.Errorf("the dashboard's explain page for %s/%s lacks its delay constraint:\n%s", d.Namespace, d.Name, explained)
	}
	if !strings.Contains(get(t, dashURL), `href="explain/deployment/demo/mine"`) {
		t.Error("the dashboard does not link the user's Deployment to its explain page")
	}

	// The dashboard compares ning's web with the default scheduler's and
	// the optimum, every figure known (no penalty), ning no worse.
	if cmp := snapshotOf(t, dashURL).Comparison; cmp == nil || len(cmp.Rows) != 3 {
		t.Errorf("the dashboard's comparison: %+v, want ning, the default scheduler and the optimum", cmp)
	} else {
		ms := map[string]float64{}
		for _, r := range cmp.Rows {
			if r.WeightedRTTMs == nil || *r.WeightedRTTMs <= 0 || *r.WeightedRTTMs > 1000 {
				t.Errorf("comparison row %s: weighted RTT %v, want a known figure of the topology's scale", r.Name, r.WeightedRTTMs)
				continue
			}
			ms[r.Name] = *r.WeightedRTTMs
		}
		if !(ms[dashboard.CompareOptimum] <= ms[dashboard.CompareNing] && ms[dashboard.CompareNing] <= ms[dashboard.CompareDefault]) {
			t.Errorf("comparison %v: want optimum <= ning <= default", ms)
		}
		t.Logf("comparison: %v", ms)
	}

	// Bad input is refused before it reaches the demo.
	for _, bad := range []map[string]float64{{"nowhere": 5}} {
		if _, err := demo.SetTraffic(ctx, client, bad); err == nil || !strings.Contains(err.Error(), `"nowhere" is not a site of the topology`) {
			t.Errorf("SetTraffic(%v): %v, want the unknown site refused", bad, err)
		}
	}
	// The traffic changes, and reaches the store behind the dashboard.
	traffic, err := demo.SetTraffic(ctx, client, map[string]float64{from: 500})
	if err != nil {
		t.Fatal(err)
	}
	if traffic[from] != 500 || traffic["downtown"] <= 0 {
		t.Errorf("traffic after set: %v", traffic)
	}
	waitText(ctx, t, done, "the store to see 500 req/s at "+from, func() bool {
		return siteTraffic(t, dashURL, from) > 450
	})
	// Written by hand (kubectl edit), a bad version is rejected and counted,
	// and the traffic stays.
	cm, err := client.CoreV1().ConfigMaps(demo.TrafficNamespace).Get(ctx, demo.TrafficConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data[from] = "lots"
	if _, err := client.CoreV1().ConfigMaps(demo.TrafficNamespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitText(ctx, t, done, "the bad ConfigMap to be rejected", func() bool {
		return strings.Contains(messages.String(), `rejected, the traffic stays as it was: north-suburb: "lots": want req/s`)
	})
	if !strings.Contains(get(t, strings.TrimSuffix(dashURL, "/")+"/metrics"), `ning_demo_traffic_updates_total{result="rejected"} 1`) {
		t.Error("the rejection is not counted on /metrics")
	}
	if v := siteTraffic(t, dashURL, from); v < 450 {
		t.Errorf("after the rejected version the store has %v req/s at %s, want the 500 kept", v, from)
	}

	// Ctrl-C: everything stops, the cluster's files go.
	interrupt()
	var res playResult
	select {
	case res = <-done:
		done <- res // for the deferred wait
	case <-ctx.Done():
		t.Fatal("the playground did not stop on cancel")
	}
	if res.err != nil {
		t.Errorf("the playground ended with %v, want nil on Ctrl-C", res.err)
	}
	if res.sum == nil {
		t.Error("no summary after the playground")
	}
	for _, f := range []string{kubeconfig, manifest} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after the playground stopped: %v, want it removed", f, err)
		}
	}
	if _, err := client.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{}); err == nil {
		t.Error("the playground's kube-apiserver still answers after it stopped")
	}
}

// playResult is what demo.Run returned.
type playResult struct {
	sum *demo.Summary
	err error
}

// waitText polls cond until it holds, failing if the demo ends first.
func waitText(ctx context.Context, t *testing.T, done chan playResult, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case res := <-done:
			done <- res
			t.Fatalf("waiting for %s: the demo ended: %v", what, res.err)
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// siteTraffic is the traffic at site in the dashboard's snapshot, NaN
// without a figure.
func siteTraffic(t *testing.T, dashURL, site string) float64 {
	t.Helper()
	for _, st := range snapshotOf(t, dashURL).Sites {
		if st.Name == site && st.TrafficRPS != nil {
			return *st.TrafficRPS
		}
	}
	return math.NaN()
}

// snapshotOf is the dashboard's /api/snapshot.
func snapshotOf(t *testing.T, dashURL string) dashboard.Snapshot {
	t.Helper()
	var s dashboard.Snapshot
	if err := json.Unmarshal([]byte(get(t, dashURL+"api/snapshot")), &s); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return s
}
