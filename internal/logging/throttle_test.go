package logging

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestThrottle(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
	e := NewThrottle(time.Minute, clk)
	var got []bool
	step := func(key string, advance time.Duration) {
		clk.SetTime(clk.Now().Add(advance))
		ok, _ := e.Allow(key)
		got = append(got, ok)
	}
	step("a", 0)
	step("a", time.Second)    // within the interval
	step("b", 0)              // another key
	step("a", 59*time.Second) // the interval is over
	step("b", 0)
	if diff := cmp.Diff([]bool{true, false, true, true, false}, got); diff != "" {
		t.Errorf("Allow (-want +got):\n%s", diff)
	}
	// A flood of keys stays bounded and lets new keys through.
	for i := range 3 * maxThrottleKeys {
		e.Allow(fmt.Sprint("flood-", i))
	}
	if n := len(e.last); n > maxThrottleKeys {
		t.Errorf("%d keys remembered, want at most %d", n, maxThrottleKeys)
	}
	if ok, _ := e.Allow("late"); !ok {
		t.Error("a new key after the flood was not let through")
	}
}
