package explain

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ning-edge/ning/internal/defaultplugins"
)

// defaultScores runs kube-scheduler's default score plugins that ning's
// profile keeps (defaultplugins.Scorers) themselves, with their default
// arguments and weights, in a scheduling framework over a snapshot of the
// cluster (every bound pod but the one explained), and returns each
// candidate node's scores, normalised as the framework weighs them.
func defaultScores(ctx context.Context, client kubernetes.Interface, pod *v1.Pod, nodes []*v1.Node, pods []*v1.Pod, candidates []string) (map[string][]Score, error) {
	f, err := defaultplugins.New(ctx, client, defaultplugins.Scorers, nodes, pods, pod.UID)
	if err != nil {
		return nil, err
	}
	scores, err := f.Scores(ctx, pod, candidates)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]Score, len(scores))
	for node, ss := range scores {
		for _, s := range ss {
			out[node] = append(out[node], Score{Plugin: s.Plugin, Raw: ptrTo(float64(s.Score)), Normalised: s.Score, Weight: s.Weight, Default: true})
		}
	}
	return out, nil
}
