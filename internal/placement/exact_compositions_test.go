package placement

import "testing"

// TestBoundedCompositions checks the prefix-sum count against direct counting.
func TestBoundedCompositions(t *testing.T) {
	for _, c := range []struct {
		upper []int
		total int
	}{{[]int{2, 3, 1}, 3}, {[]int{0, 5, 5, 2}, 6}, {[]int{4, 4, 4, 4, 4}, 9}, {[]int{1}, 2}, {nil, 0}} {
		if got, want := boundedCompositions(c.upper, c.total), countCompositions(c.upper, c.total); got != want {
			t.Errorf("boundedCompositions(%v, %d) = %v, want %v", c.upper, c.total, got, want)
		}
	}
}

func countCompositions(upper []int, total int) float64 {
	if len(upper) == 0 {
		if total == 0 {
			return 1
		}
		return 0
	}
	n := 0.0
	for k := 0; k <= upper[0] && k <= total; k++ {
		n += countCompositions(upper[1:], total-k)
	}
	return n
}
