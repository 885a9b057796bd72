package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ning-edge/ning/internal/placement"
)

const u = placement.Unlimited

func TestSiteLimits(t *testing.T) {
	l := SiteLimits{PerSite: 3, Sites: SiteCapacities(map[string]int{"a": 5, "b": 2}, map[string]int{"a": 4, "c": u})}
	if diff := cmp.Diff(map[string]int{"a": 4, "b": 2}, l.Sites); diff != "" {
		t.Errorf("SiteCapacities: the smallest holds, unlimited is dropped (-want +got):\n%s", diff)
	}
	for site, want := range map[string]int{"a": 3, "b": 2, "c": 3} {
		if got := l.Of(site); got != want {
			t.Errorf("Of(%s) = %d, want %d", site, got, want)
		}
	}
	if !l.Full("b", 2) || l.Full("b", 1) || l.Full("c", 2) || !l.Full("c", 3) {
		t.Error("Full: a site is full at its limit, not below it")
	}
	if got, want := l.Reason("b", 2), "site b holds 2 replicas of the workload, its capacity (2)"; got != want {
		t.Errorf("Reason = %q, want %q", got, want)
	}
	if got, want := l.Reason("a", 3), "site a holds 3 replicas of the workload, the most its ning.io/max-per-site label allows (3)"; got != want {
		t.Errorf("Reason = %q, want %q", got, want)
	}
	p := Problem([]string{"a", "b", "c", "d"}, nil, nil, 0)
	p.Capacity[3] = 1
	SiteLimits{PerSite: u, Sites: map[string]int{"b": 2}}.Apply(p)
	if diff := cmp.Diff([]int{u, 2, u, 1}, p.Capacity); diff != "" {
		t.Errorf("Apply keeps the smaller capacity (-want +got):\n%s", diff)
	}
	if got := Room(p); got != -1 {
		t.Errorf("Room with an unlimited site = %d, want -1", got)
	}
	if diff := cmp.Diff([]bool{true, false, false, true}, Open(p, placement.Placement{9, 2, 0, 0}, []bool{true, true, false, true})); diff != "" {
		t.Errorf("Open (-want +got):\n%s", diff)
	}
	if !(SiteLimits{PerSite: u}).None() || l.None() {
		t.Error("None")
	}
}

func TestLimitLabels(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  int
		err   string
	}{
		{"3", 3, ""},
		{"0", 0, ""},
		{"three", 0, `label ning.io/max-per-site="three" is not a whole number of replicas (want e.g. "3")`},
		{"-1", 0, `label ning.io/max-per-site="-1" is outside 0..1000000`},
		{"1000001", 0, `label ning.io/max-per-site="1000001" is outside 0..1000000`},
	} {
		got, err := MaxPerSite(map[string]string{LabelMaxPerSite: tc.value})
		if msg := errText(err); msg != tc.err || got != tc.want {
			t.Errorf("MaxPerSite(%q) = %d, %q; want %d, %q", tc.value, got, msg, tc.want, tc.err)
		}
	}
	if got, err := MaxPerSite(nil); got != u || err != nil {
		t.Errorf("no label: %d, %v; want unlimited", got, err)
	}
	node := func(name, site, capacity string) *v1.Node {
		l := map[string]string{"zone": site}
		if capacity != "" {
			l[LabelSiteCapacity] = capacity
		}
		return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
	}
	caps, bad := NodeCapacities([]*v1.Node{node("a-0", "a", "4"), node("a-1", "a", "2"), node("b-0", "b", ""), node("c-0", "c", "x")},
		func(n *v1.Node) string { return n.Labels["zone"] })
	if diff := cmp.Diff(map[string]int{"a": 2}, caps); diff != "" {
		t.Errorf("NodeCapacities (-want +got):\n%s", diff)
	}
	if len(bad) != 1 || bad[0].Error() != `node c-0: label ning.io/site-capacity="x" is not a whole number of replicas (want e.g. "3")` {
		t.Errorf("malformed labels: %v", bad)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// FuzzMaxPerSite: any label value gives a limit in range or an error.
func FuzzMaxPerSite(f *testing.F) {
	for _, s := range []string{"3", "", "-0", "+7", "1e3", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		n, err := MaxPerSite(map[string]string{LabelMaxPerSite: v})
		if err == nil && (n < 0 || n > MaxLimit) {
			t.Fatalf("%q gave %d", v, n)
		}
	})
}
