package bench

import (
	"math/rand/v2"
	"sort"
	"time"
)

// QueueFloor is what the workload's queues alone cost: the p50 and p95
// response time (ms) of Poisson arrivals at total requests/s spread evenly
// over replicas, each a FIFO queue with concurrency servers of a fixed
// service time (M/D/c), with no network and no gateway. An even split is
// the best case for the queues, so no placement and no routing can bring
// the measured percentiles below these. It is simulated with a fixed seed,
// so the same inputs give the same figures.
func QueueFloor(total float64, replicas int, service time.Duration, concurrency int) (p50, p95 float64) {
	if total <= 0 || replicas <= 0 || concurrency <= 0 || service <= 0 {
		return 0, 0
	}
	const n = 400_000
	lambda := total / float64(replicas)
	s := service.Seconds()
	rng := rand.New(rand.NewPCG(1, 2))
	free := make([]float64, concurrency) // when each server is next free
	sojourn := make([]float64, n)
	t := 0.0
	for i := range sojourn {
		t += rng.ExpFloat64() / lambda
		k := 0
		for j := range free {
			if free[j] < free[k] {
				k = j
			}
		}
		start := max(t, free[k])
		free[k] = start + s
		sojourn[i] = (free[k] - t) * 1000
	}
	sort.Float64s(sojourn)
	return round2(Quantile(sojourn, 0.5)), round2(Quantile(sojourn, 0.95))
}
