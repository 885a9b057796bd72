package policy

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

func TestJudgeSilence(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rule := PartitionRule{Window: 10 * time.Second, Autonomy: 5 * time.Minute}
	// The node's Lease was last renewed at t0; the next renewal was due at
	// t0+10s. The fake clock stands where each case looks.
	silence := func(heard time.Duration) Silence {
		s := Silence{Since: t0, Due: t0.Add(10 * time.Second)}
		if heard >= 0 {
			s.Heard = t0.Add(heard)
		}
		return s
	}
	const never = -1
	tests := []struct {
		name       string
		rule       PartitionRule
		heard      time.Duration // since t0; never: no sign at all
		autonomy   Autonomy
		siteLinkUp bool
		at         time.Duration // since t0
		want       Fate
		wantUntil  time.Duration // since t0; 0: none
	}{
		{name: "the data plane hears the site after the missed renewal: cut off", rule: rule, heard: 18 * time.Second, at: 20 * time.Second,
			want: FateCutOff, wantUntil: 5 * time.Minute},
		{name: "no sign since the renewal was due (the whole site is gone): dead", rule: rule, heard: 9 * time.Second, at: 20 * time.Second, want: FateDead},
		{name: "never heard: dead", rule: rule, heard: never, at: 20 * time.Second, want: FateDead},
		{name: "the data plane stopped hearing it too: dead after the window", rule: rule, heard: 18 * time.Second, at: 29 * time.Second, want: FateDead},
		{name: "still heard, within the window", rule: rule, heard: 18 * time.Second, at: 28 * time.Second, want: FateCutOff, wantUntil: 5 * time.Minute},
		{name: "still heard, past the autonomy bound: dead", rule: rule, heard: 5*time.Minute - time.Second, at: 5 * time.Minute, want: FateDead},
		{name: "heard, but another node of the site still renews its Lease: dead", rule: rule, heard: 18 * time.Second, siteLinkUp: true,
			at: 20 * time.Second, want: FateDead},
		{name: "window 0: partitions are deaths", rule: PartitionRule{Autonomy: time.Minute}, heard: 18 * time.Second, at: 20 * time.Second, want: FateDead},
		{name: "autonomy 0: partitions are deaths", rule: PartitionRule{Window: time.Minute}, heard: 18 * time.Second, at: 20 * time.Second, want: FateDead},
		{name: "annotated: cut off within its bound, though the data plane hears nothing", rule: rule, heard: never,
			autonomy: Autonomy{Set: true, Bound: time.Hour}, at: 59 * time.Minute, want: FateCutOff, wantUntil: time.Hour},
		{name: "annotated: dead past its bound", rule: rule, heard: 59 * time.Minute, autonomy: Autonomy{Set: true, Bound: time.Hour}, at: time.Hour, want: FateDead},
		{name: "annotated 0: cut off for ever", rule: PartitionRule{}, heard: never, autonomy: Autonomy{Set: true}, at: 1000 * time.Hour, want: FateCutOff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakePassiveClock(t0)
			clk.SetTime(t0.Add(tt.at))
			sl := silence(tt.heard)
			sl.SiteLinkUp = tt.siteLinkUp
			v := JudgeSilence(tt.rule, sl, tt.autonomy, clk.Now())
			if v.Fate != tt.want {
				t.Errorf("fate %s (%s), want %s", v.Fate, v.Why, tt.want)
			}
			var want time.Time
			if tt.wantUntil != 0 {
				want = t0.Add(tt.wantUntil)
			}
			if !v.Until.Equal(want) {
				t.Errorf("until %v, want %v", v.Until, want)
			}
			if v.Why == "" {
				t.Error("no reason given")
			}
		})
	}
}

func TestNodeAutonomy(t *testing.T) {
	tests := []struct {
		value   *string
		want    Autonomy
		wantErr string
	}{
		{value: nil, want: Autonomy{}},
		{value: ptr.To("24h"), want: Autonomy{Set: true, Bound: 24 * time.Hour}},
		{value: ptr.To(" 90s "), want: Autonomy{Set: true, Bound: 90 * time.Second}},
		{value: ptr.To("0"), want: Autonomy{Set: true}},
		{value: ptr.To("-1m"), wantErr: `annotation node.openyurt.io/autonomy-duration="-1m": want a duration of 0 (no bound) or more, such as 24h`},
		{value: ptr.To("a day"), wantErr: `annotation node.openyurt.io/autonomy-duration="a day": want a duration of 0 (no bound) or more, such as 24h`},
	}
	for _, tt := range tests {
		ann := map[string]string{"other": "x"}
		if tt.value != nil {
			ann[AutonomyAnnotation] = *tt.value
		}
		got, err := NodeAutonomy(ann)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("NodeAutonomy(%v): error %v, want %q", ann, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NodeAutonomy(%v) = %+v, %v; want %+v", ann, got, err, tt.want)
		}
	}
}
