package policy

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func TestMoveRuleWait(t *testing.T) {
	r := MoveRule{Cooldown: time.Minute, BackoffBase: 2 * time.Minute, BackoffMax: 10 * time.Minute}
	for _, tc := range []struct {
		rule    MoveRule
		bounces int
		want    time.Duration
	}{
		{r, 0, time.Minute},
		{r, 1, 2 * time.Minute},
		{r, 2, 4 * time.Minute},
		{r, 3, 8 * time.Minute},
		{r, 4, 10 * time.Minute},
		{r, 1000, 10 * time.Minute},
		// No cooldown: bounces still back off from the base.
		{MoveRule{BackoffBase: 30 * time.Second, BackoffMax: time.Hour}, 0, 0},
		{MoveRule{BackoffBase: 30 * time.Second, BackoffMax: time.Hour}, 2, time.Minute},
		// A maximum under the cooldown never shortens it.
		{MoveRule{Cooldown: time.Hour, BackoffBase: time.Minute, BackoffMax: time.Minute}, 3, time.Hour},
	} {
		if got := tc.rule.Wait(LastMove{Bounces: tc.bounces}); got != tc.want {
			t.Errorf("%+v, %d bounces: wait %v, want %v", tc.rule, tc.bounces, got, tc.want)
		}
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := r.Until(LastMove{At: at, Bounces: 1}); !got.Equal(at.Add(2 * time.Minute)) {
		t.Errorf("until %v, want %v", got, at.Add(2*time.Minute))
	}
}

func TestLanded(t *testing.T) {
	sites := map[string]string{"a-0": "a", "b-0": "b", "c-0": "c"}
	siteOf := func(n string) (string, bool) { s, ok := sites[n]; return s, ok }
	pod := func(uid, node string) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid)}, Spec: v1.PodSpec{NodeName: node}}
	}
	gone := pod("new", "a-0")
	gone.DeletionTimestamp = ptr.To(metav1.Now())
	before := map[types.UID]bool{"old-0": true, "old-1": true}
	move := LastMove{From: "a", To: "c"}
	for _, tc := range []struct {
		name string
		m    LastMove
		pods []*v1.Pod
		want Landing
	}{
		{"no replacement yet", move, []*v1.Pod{pod("old-0", "a-0")}, LandedPending},
		{"replacement not bound", move, []*v1.Pod{pod("old-0", "a-0"), pod("new", "")}, LandedPending},
		{"replacement on an unknown node", move, []*v1.Pod{pod("new", "x-9")}, LandedPending},
		{"a terminating pod is no replacement", move, []*v1.Pod{gone}, LandedPending},
		{"as predicted", move, []*v1.Pod{pod("old-0", "a-0"), pod("new", "c-0")}, LandedAsPredicted},
		{"back on the site it left", move, []*v1.Pod{pod("old-0", "a-0"), pod("new", "a-0")}, LandedBounced},
		{"a third site", move, []*v1.Pod{pod("new", "b-0")}, LandedElsewhere},
		{"one of two back on the site it left is a bounce", move, []*v1.Pod{pod("new", "c-0"), pod("new-2", "a-0")}, LandedBounced},
		{"a delay repair (no prediction) elsewhere", LastMove{From: "a"}, []*v1.Pod{pod("new", "c-0")}, LandedElsewhere},
	} {
		if got := Landed(tc.m, before, tc.pods, siteOf); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	m := LastMove{Bounces: 2}
	if got := m.After(LandedBounced).Bounces; got != 3 {
		t.Errorf("after a bounce: %d bounces, want 3", got)
	}
	if got := m.After(LandedAsPredicted).Bounces; got != 0 {
		t.Errorf("after a landing as predicted: %d bounces, want 0", got)
	}
	if got := m.After(LandedPending).Bounces; got != 2 {
		t.Errorf("while pending: %d bounces, want 2", got)
	}
}
