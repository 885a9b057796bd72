package trafficlatency

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/kubernetes/pkg/scheduler/framework"
)

func TestNormalizeScore(t *testing.T) {
	p := &Plugin{}
	scores := []struct{ in, want int64 }{{5000, 0}, {7500, 50}, {10000, 100}}
	var list []framework.NodeScore
	for i, s := range scores {
		list = append(list, framework.NodeScore{Name: string(rune('a' + i)), Score: s.in})
	}
	if st := p.NormalizeScore(context.Background(), framework.NewCycleState(), nil, list); st != nil {
		t.Fatal(st)
	}
	var got, want []int64
	for i, s := range scores {
		got, want = append(got, list[i].Score), append(want, s.want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}
