package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/bench"
	"github.com/ning-edge/ning/internal/extender"
	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/testcluster"
)

// startExtenderEnv starts a control plane with the usual nodes, a `ning
// extender` on 127.0.0.1:0 reading the test topology, and two stock
// kube-schedulers (the default profile plus the extender, from
// extender.SchedulerConfig): "default-scheduler" with nodeCacheCapable, as
// deploy/extender-config.yaml, and "full-nodes" sending whole Node objects
// and keeping the whole default profile (PodTopologySpread's scoring too).
func startExtenderEnv(t *testing.T) *env {
	t.Helper()
	cp := testcluster.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &env{cp: cp, c: cp.Client, store: staticStore(t, testRTT, testTraffic), ctx: ctx, site: map[string]string{}}
	e.createNodes(t)

	url := serveExtender(ctx, t, cancel, e)
	for _, mode := range []struct {
		name    string
		byNames bool
	}{{"default-scheduler", true}, {"full-nodes", false}} {
		cfg, err := extender.SchedulerConfig(extender.SchedulerConfigParams{
			Kubeconfig: cp.Kubeconfig, SchedulerName: mode.name, URL: url,
			NodeCacheCapable: mode.byNames, SpreadScoring: !mode.byNames,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := bench.StartStockScheduler(ctx, t.TempDir(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// TestExtender runs the stock kube-scheduler with ning's extender, in both
// nodeCacheCapable modes, and checks that pods land where ning's latency data
// says: the same cases as TestScheduler's plugins (runPlacementCases).
func TestExtender(t *testing.T) {
	e := startExtenderEnv(t)
	for _, scheduler := range []string{"default-scheduler", "full-nodes"} {
		stock := func(p *v1.Pod) { p.Spec.SchedulerName = scheduler }
		t.Run(scheduler, func(t *testing.T) {
			runPlacementCases(t, e, stock)
			t.Run("unsatisfiable stays pending with the reason", func(t *testing.T) {
				ns := e.namespace(t)
				e.createPod(t, ns, "p", map[string]string{"delay_a": "12", "delay_c": "12"}, stock)
				msg := e.waitUnschedulable(t, ns, "p")
				if want := "delay_a 12ms: c is 40.0ms from a"; !strings.Contains(msg, want) {
					t.Errorf("condition message %q lacks %q", msg, want)
				}
			})
			t.Run("cloud only as fallback", func(t *testing.T) {
				ns := e.namespace(t)
				e.createPod(t, ns, "p", map[string]string{"delay_a": "1000"}, func(p *v1.Pod) {
					stock(p)
					p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
						NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{
							Key: v1.LabelTopologyZone, Operator: v1.NodeSelectorOpIn, Values: []string{"c", "cloud"},
						}}}},
					}}}
				})
				if got := e.waitSite(t, ns, "p"); got != "c" {
					t.Fatalf("site = %s, want the edge site c over the cloud", got)
				}
			})
			t.Run("replicas one at a time follow the planner", func(t *testing.T) {
				ns := e.namespace(t)
				owner := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web",
					UID: types.UID("rs-web-" + scheduler), Controller: ptr.To(true)}
				got := map[string]int{}
				for i := range 6 {
					name := fmt.Sprintf("web-%d", i)
					e.createPod(t, ns, name, map[string]string{"app": "web"}, func(p *v1.Pod) {
						stock(p)
						p.OwnerReferences = []metav1.OwnerReference{owner}
					})
					got[e.waitSite(t, ns, name)]++
					// The extender sees a binding through its pod informer, a
					// moment after the apiserver has it.
					time.Sleep(300 * time.Millisecond)
				}
				sites := []string{"a", "b", "c"}
				plan, err := placement.Plan(t.Context(), &placement.Problem{
					Sites: sites, Traffic: []float64{100, 10, 5},
					Capacity: []int{placement.Unlimited, placement.Unlimited, placement.Unlimited},
					RTT:      e.store.Matrix(sites), Replicas: 6,
				})
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(plan.Map(sites), got); diff != "" {
					t.Fatalf("replicas per site (-plan +scheduled):\n%s", diff)
				}
			})
		})
	}
}

// serveExtender serves ning's extender in-process over e's cluster and
// store until the test ends (cancel stops it), and returns its URL.
func serveExtender(ctx context.Context, t *testing.T, cancel context.CancelFunc, e *env) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	served := make(chan error, 1)
	go func() { served <- extender.Serve(ctx, ln, e.c, e.store, extender.RunOptions{}, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("extender: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}
