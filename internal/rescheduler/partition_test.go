package rescheduler

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/testcluster"
)

// partitioned is one healer check's verdict on n1, for TestHealerPartition.
type partitioned struct {
	At      int // seconds after n1's last renewal
	Taint   bool
	Delete  []string
	Surge   map[string]int // ReplicaSet -> pods
	Release bool
	Fate    policy.Fate
}

// TestHealerPartition follows node n1 (site a) after its Lease stops being
// renewed at t0, on a fake clock, one check a second, while the data plane
// hears site a until heardUntil (a probe each second) and the other nodes
// renew: the healer's decisions at each change.
func TestHealerPartition(t *testing.T) {
	web := func(name string) *v1.Pod {
		return makePod(name).on("n1").owner("ReplicaSet", "web-5d8f").label("app", "web").label(appsv1.DefaultDeploymentUniqueLabelKey, "5d8f").obj()
	}
	pods := []*v1.Pod{web("web-0"), web("web-1"), makePod("db-0").on("n1").owner("StatefulSet", "db").obj(),
		makePod("web-2").on("n2").owner("ReplicaSet", "web-5d8f").label(appsv1.DefaultDeploymentUniqueLabelKey, "5d8f").obj()}
	// cutOff is every check after the first that finds n1 cut off.
	cutOff := func(at int) partitioned { return partitioned{At: at, Surge: map[string]int{"web-5d8f": 2}} }
	dead := func(at int, taint bool) partitioned {
		return partitioned{At: at, Taint: taint, Delete: []string{"web-0", "web-1"}, Release: true, Fate: policy.FateDead}
	}
	tests := []struct {
		name       string
		heardUntil time.Duration // the data plane's last sign of site a, after t0 (-1: never)
		autonomy   string        // n1's node.openyurt.io/autonomy-duration ("": none)
		siteMate   bool          // n2, which renews, is in site a too
		edit       func(*Config)
		until      time.Duration
		want       []partitioned // the first check, then each change
	}{
		{name: "only the control plane lost it: cut off, pods kept, capacity added; dead once the data plane loses it too",
			heardUntil: 40 * time.Second, until: 2 * time.Minute,
			want: []partitioned{{At: 20, Taint: true, Surge: map[string]int{"web-5d8f": 2}, Fate: policy.FateCutOff}, cutOff(21), dead(101, false), {At: 102, Release: true}}},
		{name: "the whole site is gone: dead after the node-down delay, as before",
			heardUntil: 8 * time.Second, until: time.Minute,
			want: []partitioned{dead(20, true), {At: 21, Release: true}}},
		{name: "still heard: dead once the partition autonomy has passed",
			heardUntil: time.Hour, edit: func(c *Config) { c.PartitionAutonomy = 3 * time.Minute }, until: 4 * time.Minute,
			want: []partitioned{{At: 20, Taint: true, Surge: map[string]int{"web-5d8f": 2}, Fate: policy.FateCutOff}, cutOff(21), dead(180, false), {At: 181, Release: true}}},
		{name: "heard, but another node of its site still renews: the node itself is silent, dead",
			heardUntil: time.Hour, siteMate: true, until: time.Minute,
			want: []partitioned{dead(20, true), {At: 21, Release: true}}},
		{name: "partition detection off: dead, as before", heardUntil: time.Hour, edit: func(c *Config) { c.DataPlaneWindow = 0 }, until: time.Minute,
			want: []partitioned{dead(20, true), {At: 21, Release: true}}},
		{name: "OpenYurt autonomy: cut off for its bound though the data plane hears nothing",
			heardUntil: -1, autonomy: "2m", until: 3 * time.Minute,
			want: []partitioned{{At: 20, Taint: true, Surge: map[string]int{"web-5d8f": 2}, Fate: policy.FateCutOff}, cutOff(21), dead(120, false), {At: 121, Release: true}}},
		{name: "OpenYurt autonomy 0: cut off for as long as it is silent",
			heardUntil: -1, autonomy: "0", until: 30 * time.Minute,
			want: []partitioned{{At: 20, Taint: true, Surge: map[string]int{"web-5d8f": 2}, Fate: policy.FateCutOff}, cutOff(21)}},
		{name: "an autonomy annotation that does not parse is ignored",
			heardUntil: -1, autonomy: "a day", until: time.Minute,
			want: []partitioned{dead(20, true), {At: 21, Release: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, m, clk := testHealer(t, tt.edit)
			h.heard = func(site string) time.Time {
				if site != "a" || tt.heardUntil < 0 {
					return time.Time{}
				}
				return t0.Add(min(clk.Since(t0), tt.heardUntil)).Truncate(time.Second)
			}
			b := makeNode("n1", "a")
			if tt.autonomy != "" {
				b.n.Annotations = map[string]string{policy.AutonomyAnnotation: tt.autonomy}
			}
			mateSite := "b"
			if tt.siteMate {
				mateSite = "a"
			}
			nodes := []*v1.Node{b.obj(), makeNode("n2", mateSite).obj(), makeNode("n3", "c").obj()}
			leases := map[string]nodeLease{"n1": {renew: t0, duration: 40 * time.Second}, "n2": {renew: t0}, "n3": {renew: t0}}
			h.sawLease()
			h.decide(context.Background(), nodes, leases, pods)
			var got []partitioned
			var last partitioned
			for clk.Since(t0) < tt.until {
				clk.Step(time.Second)
				for _, n := range []string{"n2", "n3"} {
					leases[n] = nodeLease{renew: clk.Now()}
				}
				h.sawLease()
				p := partitioned{}
				for _, a := range h.decide(context.Background(), nodes, leases, pods) {
					if a.node.Name != "n1" {
						t.Fatalf("an action on %s", a.node.Name)
					}
					p = partitioned{Taint: a.taint, Release: a.release, Fate: a.fate}
					for _, d := range a.deletes {
						p.Delete = append(p.Delete, d.pod.Name)
					}
					for _, sg := range a.surges {
						if p.Surge == nil {
							p.Surge = map[string]int{}
						}
						p.Surge[sg.replicaSet] = sg.pods
					}
					if a.down && a.taint {
						nodes[0].Spec.Taints = []v1.Taint{{Key: TaintNodeDown, Effect: v1.TaintEffectNoSchedule}} // as act does
					}
				}
				if !cmp.Equal(p, last) {
					last = p
					p.At = int(clk.Since(t0) / time.Second)
					got = append(got, p)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("checks (-want +got):\n%s", diff)
			}
			// Each verdict counted once, and the cut-off gauge as it ends.
			verdicts := map[policy.Fate]float64{}
			for _, p := range tt.want {
				if p.Fate != "" {
					verdicts[p.Fate]++
				}
			}
			for _, f := range []policy.Fate{policy.FateCutOff, policy.FateDead} {
				if n := testutil.ToFloat64(m.NodeVerdicts.WithLabelValues(string(f))); n != verdicts[f] {
					t.Errorf("ning_rescheduler_node_verdicts_total{fate=%q} %v, want %v", f, n, verdicts[f])
				}
			}
			wantCutOff := 0.0
			if last := tt.want[len(tt.want)-1]; last.Fate == "" && last.Surge != nil {
				wantCutOff = 1
			}
			if n := testutil.ToFloat64(m.NodesCutOff); n != wantCutOff {
				t.Errorf("ning_rescheduler_nodes_cut_off %v, want %v", n, wantCutOff)
			}
		})
	}
}

// TestPartitionSurgeUnderChartRBAC adds and takes back the replicas of two
// cut-off nodes on a real apiserver with RBAC on, as a user holding only the
// Deployment verbs the chart grants the rescheduler (get, list, watch,
// patch): each node's replicas once, whatever the retries, and the
// annotation gone with the last.
func TestPartitionSurgeUnderChartRBAC(t *testing.T) {
	ctx := context.Background()
	cp := testcluster.Start(t, "--authorization-mode=RBAC")
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "busybox"}}}}}}
	if _, err := cp.Client.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	client := chartClient(ctx, t, cp, rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch", "patch"}},
		func(ctx context.Context, c kubernetes.Interface) error {
			_, err := c.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
			return err
		})
	h := newHealer(DefaultConfig(), client, testMetrics(t), discard(), clocktesting.NewFakeClock(t0), record.NewFakeRecorder(10))
	steps := []struct {
		node        string
		add         int32
		wantChanged int32
		wantReps    int32
		wantAnn     string // "": none
	}{
		{"n1", 2, 2, 5, `{"n1":2}`},
		{"n1", 2, 0, 5, `{"n1":2}`}, // once per node
		{"n2", 1, 1, 6, `{"n1":2,"n2":1}`},
		{"n1", 0, -2, 4, `{"n2":1}`},
		{"n1", 0, 0, 4, `{"n2":1}`}, // taken back once
		{"n2", 0, -1, 3, ""},
	}
	for i, st := range steps {
		changed, err := h.patchSurge(ctx, "default", "web", st.node, st.add)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		d, err := cp.Client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ann, has := d.Annotations[AnnotationSurge]
		if changed != st.wantChanged || *d.Spec.Replicas != st.wantReps || ann != st.wantAnn || has != (st.wantAnn != "") {
			t.Errorf("step %d (%s %+d): changed %d, replicas %d, annotation %q (%t); want %d, %d, %q",
				i, st.node, st.add, changed, *d.Spec.Replicas, ann, has, st.wantChanged, st.wantReps, st.wantAnn)
		}
	}
}
