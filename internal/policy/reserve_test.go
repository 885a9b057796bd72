package policy

import (
	"context"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ning-edge/ning/internal/placement"
)

func TestFailoverReserveAnnotation(t *testing.T) {
	for _, tc := range []struct {
		ann  map[string]string
		want int
		err  string
	}{
		{nil, 0, ""},
		{map[string]string{AnnotationFailoverReserve: "2"}, 2, ""},
		{map[string]string{AnnotationFailoverReserve: "one"}, 0, `annotation ning.io/failover-reserve="one" is not a whole number of placeholders (want e.g. "1")`},
		{map[string]string{AnnotationFailoverReserve: "-1"}, 0, `annotation ning.io/failover-reserve="-1" is outside 0..100`},
		{map[string]string{AnnotationFailoverReserve: "101"}, 0, `annotation ning.io/failover-reserve="101" is outside 0..100`},
	} {
		got, err := FailoverReserve(tc.ann)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if got != tc.want || gotErr != tc.err {
			t.Errorf("FailoverReserve(%v) = %d, %q; want %d, %q", tc.ann, got, gotErr, tc.want, tc.err)
		}
	}
}

// line is four sites in a row, 10 ms apart, with traffic entering at a and d.
func line() *placement.Problem {
	sites := []string{"a", "b", "c", "d"}
	rtt := make([][]float64, len(sites))
	for i := range rtt {
		rtt[i] = make([]float64, len(sites))
		for j := range rtt[i] {
			rtt[i][j] = 10 * math.Abs(float64(i-j))
		}
	}
	return Problem(sites, rtt, map[string]float64{"a": 10, "d": 1}, 0)
}

func TestFailoverSites(t *testing.T) {
	ctx := context.Background()
	p := line()
	current := placement.Placement{2, 0, 0, 1}
	got, err := FailoverSites(ctx, p, current, nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	// With a gone, its traffic is served best from b, next to it.
	if diff := cmp.Diff(Failover{Failed: "a", Units: map[string]int{"b": 2}}, got); diff != "" {
		t.Errorf("FailoverSites, all usable (-want +got):\n%s", diff)
	}
	// b is outside the workload's delay limit: the reserve goes to the next
	// site the planner would use, never to b.
	got, err = FailoverSites(ctx, p, current, []bool{true, false, true, true}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Failover{Failed: "a", Units: map[string]int{"c": 3}}, got); diff != "" {
		t.Errorf("FailoverSites, b excluded (-want +got):\n%s", diff)
	}
	// Only the failed site is usable: nowhere to put a reserve.
	got, err = FailoverSites(ctx, p, current, []bool{true, false, false, false}, 1)
	if err != nil || len(got.Units) != 0 {
		t.Errorf("FailoverSites with no other usable site = %v, %v; want no units", got, err)
	}
	// No replicas running, or no reserve asked for: nothing.
	if got, _ := FailoverSites(ctx, p, placement.Placement{0, 0, 0, 0}, nil, 1); got.Failed != "" || len(got.Units) != 0 {
		t.Errorf("FailoverSites with no replicas = %v", got)
	}
}

func TestShareable(t *testing.T) {
	if !Shareable([]string{"a"}, []string{"b", "c"}) {
		t.Error("disjoint failure sets may share")
	}
	if Shareable([]string{"a", "b"}, []string{"c", "b"}) {
		t.Error("failure sets that meet at b may not share")
	}
}

func size(cpu, mem string) v1.ResourceList {
	return v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse(mem)}
}

func TestPackReserve(t *testing.T) {
	got := PackReserve([]Demand{
		{Workload: "w1", Site: "b", Size: size("500m", "128Mi"), Failures: []string{"a"}},
		{Workload: "w2", Site: "b", Size: size("1", "64Mi"), Failures: []string{"c"}},
		{Workload: "w3", Site: "b", Size: size("250m", "64Mi"), Failures: []string{"a"}},
		{Workload: "w4", Site: "d", Size: size("250m", "64Mi"), Failures: []string{"c"}},
	})
	type short struct {
		Site   string
		CPU    string
		Mem    string
		Covers []string
	}
	var s []short
	for _, ph := range got {
		var ws []string
		for _, d := range ph.Covers {
			ws = append(ws, d.Workload)
		}
		cpu, mem := ph.Size[v1.ResourceCPU], ph.Size[v1.ResourceMemory]
		s = append(s, short{ph.Site, cpu.String(), mem.String(), ws})
	}
	// w1 and w3 both cover a's loss, so they need two placeholders at b;
	// w2 covers c's and shares with the larger one, which grows to fit both.
	want := []short{
		{"b", "1", "128Mi", []string{"w2", "w1"}},
		{"b", "250m", "64Mi", []string{"w3"}},
		{"d", "250m", "64Mi", []string{"w4"}},
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("PackReserve (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"c", "a"}, got[0].Failures()); diff != "" {
		t.Errorf("Failures (-want +got):\n%s", diff)
	}
}

func TestLargestRequests(t *testing.T) {
	pod := func(cpu, mem string) *v1.Pod {
		return &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{
			{Resources: v1.ResourceRequirements{Requests: size(cpu, mem)}},
			{Resources: v1.ResourceRequirements{Requests: size("100m", "1Mi")}},
		}}}
	}
	got := LargestRequests([]*v1.Pod{pod("1", "10Mi"), pod("200m", "100Mi")})
	cpu, mem := got[v1.ResourceCPU], got[v1.ResourceMemory]
	if cpu.String() != "1100m" || mem.String() != "101Mi" {
		t.Errorf("LargestRequests = %s cpu, %s memory; want 1100m, 101Mi", cpu.String(), mem.String())
	}
}

func TestMayPreempt(t *testing.T) {
	ph := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{LabelPlaceholder: "true"}}}
	app := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}}
	if !MayPreempt(ph) || MayPreempt(app) {
		t.Error("MayPreempt: only placeholder pods are victims")
	}
}
