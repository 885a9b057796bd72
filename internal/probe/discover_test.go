package probe

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
)

// nodeB builds test nodes fluently.
type nodeB struct{ n v1.Node }

func node(name string) *nodeB {
	b := &nodeB{n: v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}}
	b.n.Status.Conditions = []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}}
	return b
}
func (b *nodeB) zone(z string) *nodeB { b.n.Labels[v1.LabelTopologyZone] = z; return b }
func (b *nodeB) label(k, v string) *nodeB {
	b.n.Labels[k] = v
	return b
}
func (b *nodeB) ip(a string) *nodeB {
	b.n.Status.Addresses = append(b.n.Status.Addresses, v1.NodeAddress{Type: v1.NodeInternalIP, Address: a})
	return b
}
func (b *nodeB) externalIP(a string) *nodeB {
	b.n.Status.Addresses = append(b.n.Status.Addresses, v1.NodeAddress{Type: v1.NodeExternalIP, Address: a})
	return b
}
func (b *nodeB) notReady() *nodeB {
	b.n.Status.Conditions[0].Status = v1.ConditionFalse
	return b
}
func (b *nodeB) deleting() *nodeB {
	now := metav1.Now()
	b.n.DeletionTimestamp = &now
	return b
}
func (b *nodeB) obj() v1.Node { return b.n }

func TestNodeTargets(t *testing.T) {
	nodes := []v1.Node{
		node("home-1").zone("home").ip("10.0.0.1").obj(),
		node("east-2").zone("east").ip("10.0.1.2").obj(),
		node("east-1").zone("east").ip("10.0.1.1").obj(),
		node("east-0").zone("east").ip("10.0.1.9").notReady().obj(), // sorts first but not Ready
		node("west-1").zone("west").externalIP("1.2.3.4").obj(),     // no InternalIP
		node("west-2").zone("west").ip("10.0.2.2").deleting().obj(),
		node("west-3").zone("west").ip("10.0.2.3").obj(),
		node("lonely").ip("10.0.3.1").label("ning.io/site", "far").obj(), // no zone: its own site
	}
	tests := []struct {
		name        string
		label, self string
		all         bool
		want        []Target
		wantSkipped []string
	}{
		{
			name: "one per site", label: v1.LabelTopologyZone, self: "home",
			want: []Target{
				{Site: "east", Node: "east-1", Address: "10.0.1.1"},
				{Site: "lonely", Node: "lonely", Address: "10.0.3.1"},
				{Site: "west", Node: "west-3", Address: "10.0.2.3"},
			},
			wantSkipped: []string{"east-0", "west-1", "west-2"},
		},
		{
			name: "every node", label: v1.LabelTopologyZone, self: "home", all: true,
			want: []Target{
				{Site: "east", Node: "east-1", Address: "10.0.1.1"},
				{Site: "east", Node: "east-2", Address: "10.0.1.2"},
				{Site: "lonely", Node: "lonely", Address: "10.0.3.1"},
				{Site: "west", Node: "west-3", Address: "10.0.2.3"},
			},
			wantSkipped: []string{"east-0", "west-1", "west-2"},
		},
		{
			name: "own site skipped, even its unusable nodes", label: v1.LabelTopologyZone, self: "west",
			want: []Target{
				{Site: "east", Node: "east-1", Address: "10.0.1.1"},
				{Site: "home", Node: "home-1", Address: "10.0.0.1"},
				{Site: "lonely", Node: "lonely", Address: "10.0.3.1"},
			},
			wantSkipped: []string{"east-0"},
		},
		{
			name: "another label: unlabelled nodes are their own sites", label: "ning.io/site", self: "far",
			want: []Target{
				{Site: "east-1", Node: "east-1", Address: "10.0.1.1"},
				{Site: "east-2", Node: "east-2", Address: "10.0.1.2"},
				{Site: "home-1", Node: "home-1", Address: "10.0.0.1"},
				{Site: "west-3", Node: "west-3", Address: "10.0.2.3"},
			},
			wantSkipped: []string{"east-0", "west-1", "west-2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, skipped := NodeTargets(nodes, tt.label, tt.self, tt.all)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("targets (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantSkipped, skipped); d != "" {
				t.Errorf("skipped (-want +got):\n%s", d)
			}
		})
	}
}

// TestRoundDiscover: targets are re-discovered every round; a failed
// discovery keeps the last list.
func TestRoundDiscover(t *testing.T) {
	udp := strconv.Itoa(udpEcho(t))
	lists := []struct {
		targets []Target
		err     error
	}{
		{targets: []Target{{Site: "a", Address: "127.0.0.1:" + udp}}},
		{targets: []Target{{Site: "a", Address: "127.0.0.1:" + udp}, {Site: "b", Address: "127.0.0.1:" + udp}}},
		{err: errors.New("apiserver unreachable")},
		{targets: nil},
	}
	round := 0
	p := &Prober{
		Site: "home", Node: "home-1",
		Discover: func(context.Context) ([]Target, error) {
			l := lists[round]
			round++
			return l.targets, l.err
		},
		Options: Options{Count: 1, Timeout: 200 * time.Millisecond, Methods: []ningv1.ProbeMethod{ningv1.ProbeMethod_PROBE_METHOD_UDP_ECHO}},
		Clock:   clock.RealClock{}, Log: discard(),
	}
	for i, want := range []int{1, 2, 2, 0} {
		r, err := p.Round(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got := len(r.GetTargets()); got != want {
			t.Errorf("round %d: %d targets, want %d", i, got, want)
		}
	}
}
