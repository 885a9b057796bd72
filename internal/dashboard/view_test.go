package dashboard

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// oneEach is a history in which four sites hold one replica each: drawn as
// lines they would all lie on y = 1, one on top of the other.
func oneEach(samples int) []Sample {
	var h []Sample
	for i := range samples {
		h = append(h, Sample{Time: t0.Add(time.Duration(i-samples+1) * 5 * time.Second),
			Replicas: map[string]int{"austin": 1, "dallas": 1, "edge-x": 1, "toronto": 1}})
	}
	return h
}

func TestChartStacksSites(t *testing.T) {
	colour := map[string]string{"austin": "#1", "dallas": "#2", "edge-x": "#3", "toronto": "#4"}
	c := newChart(oneEach(3), nil, colour)
	// Plot area x 40..700, y 210 (0 replicas) .. 12 (4, the total).
	want := []layer{
		{Site: "austin", Colour: "#1", Now: 1, Points: "40.0,160.5 370.0,160.5 700.0,160.5 700.0,210.0 370.0,210.0 40.0,210.0"},
		{Site: "dallas", Colour: "#2", Now: 1, Points: "40.0,111.0 370.0,111.0 700.0,111.0 700.0,160.5 370.0,160.5 40.0,160.5"},
		{Site: "edge-x", Colour: "#3", Now: 1, Points: "40.0,61.5 370.0,61.5 700.0,61.5 700.0,111.0 370.0,111.0 40.0,111.0"},
		{Site: "toronto", Colour: "#4", Now: 1, Points: "40.0,12.0 370.0,12.0 700.0,12.0 700.0,61.5 370.0,61.5 40.0,61.5"},
	}
	if diff := cmp.Diff(want, c.Layers); diff != "" {
		t.Errorf("layers (-want +got):\n%s", diff)
	}
	if c.MaxY != 4 {
		t.Errorf("MaxY = %d, want the total of 4 replicas", c.MaxY)
	}
}

func TestChartBandFollowsItsSite(t *testing.T) {
	// a grows from 1 to 3 while b stays at 1: b's band rides on a's.
	h := []Sample{
		{Time: t0.Add(-10 * time.Second), Replicas: map[string]int{"a": 1, "b": 1}},
		{Time: t0, Replicas: map[string]int{"a": 3, "b": 1}},
	}
	c := newChart(h, nil, map[string]string{})
	want := []layer{
		// y(n) = 210 - n/4*198.
		{Site: "a", Colour: "#000000", Now: 3, Points: "40.0,160.5 700.0,61.5 700.0,210.0 40.0,210.0"},
		{Site: "b", Colour: "#000000", Now: 1, Points: "40.0,111.0 700.0,12.0 700.0,61.5 40.0,160.5"},
	}
	if diff := cmp.Diff(want, c.Layers); diff != "" {
		t.Errorf("layers (-want +got):\n%s", diff)
	}
}
