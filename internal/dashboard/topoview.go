package dashboard

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// topoView is the topology view: the sites laid out by classical MDS of
// their RTTs (ClassicalMDS), each a circle whose area is its traffic, with
// a dot per ning-scheduled replica, and every pair of sites joined by a line,
// solid where the RTT is known and dashed with a "?" where it is not.
type topoView struct {
	Width, Height int
	Sites         []topoSite
	Links         []topoLink
	Known, Pairs  int
	// Fit is the layout's mean relative error over the known links, "" when
	// there are none.
	Fit string
	Err string
}

type topoSite struct {
	Name, Colour, Traffic string
	X, Y, R               float64
	LabelY                float64
	HasTraffic            bool
	Replicas              int
	Dots                  []Point
}

type topoLink struct {
	From, To       string
	X1, Y1, X2, Y2 float64
	MidX, MidY     float64
	Known          bool
	Title          string
}

// Geometry of the view, in px.
const (
	topoWidth, topoHeight = 640, 420
	topoMargin            = 60
	topoMinR, topoMaxR    = 9.0, 30.0
	topoDotR              = 3.5
)

func newTopoView(s Snapshot, colour map[string]string) topoView {
	v := topoView{Width: topoWidth, Height: topoHeight}
	n := len(s.Sites)
	if n == 0 {
		return v
	}
	d, known := layoutDistances(s.RTTMs)
	pts, err := ClassicalMDS(d)
	if err != nil {
		v.Err = err.Error()
		return v
	}
	// Scale uniformly into the box (distance on the page stays
	// proportional to RTT), centred.
	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		minX, maxX = math.Min(minX, p.X), math.Max(maxX, p.X)
		minY, maxY = math.Min(minY, p.Y), math.Max(maxY, p.Y)
	}
	w, h := float64(topoWidth-2*topoMargin), float64(topoHeight-2*topoMargin)
	scale := 0.0
	if maxX > minX || maxY > minY {
		scale = math.Min(w/math.Max(maxX-minX, 1e-9), h/math.Max(maxY-minY, 1e-9))
	}
	cx, cy := (minX+maxX)/2, (minY+maxY)/2
	at := func(p Point) (float64, float64) {
		return round1(topoWidth/2 + (p.X-cx)*scale), round1(topoHeight/2 + (p.Y-cy)*scale)
	}
	maxTraffic := 0.0
	for _, st := range s.Sites {
		if st.TrafficRPS != nil {
			maxTraffic = math.Max(maxTraffic, *st.TrafficRPS)
		}
	}
	for i, st := range s.Sites {
		x, y := at(pts[i])
		ts := topoSite{Name: st.Name, Colour: colour[st.Name], X: x, Y: y, R: topoMinR, Replicas: st.Replicas, Traffic: "traffic unknown"}
		if st.TrafficRPS != nil {
			ts.HasTraffic = true
			ts.Traffic = fmt.Sprintf("%.1f req/s", *st.TrafficRPS)
			if maxTraffic > 0 {
				// Area in proportion to traffic.
				ts.R = round1(topoMinR + (topoMaxR-topoMinR)*math.Sqrt(*st.TrafficRPS/maxTraffic))
			}
		}
		v.Sites = append(v.Sites, ts)
	}
	separate(v.Sites)
	for i := range v.Sites {
		ts := &v.Sites[i]
		// The replicas as dots on a ring just outside the circle.
		ring := ts.R + topoDotR + 3
		for k := range min(ts.Replicas, 24) {
			a := -math.Pi/2 + 2*math.Pi*float64(k)/float64(min(ts.Replicas, 24))
			ts.Dots = append(ts.Dots, Point{X: round1(ts.X + ring*math.Cos(a)), Y: round1(ts.Y + ring*math.Sin(a))})
		}
		ts.LabelY = round1(ts.Y + ring + topoDotR + 14)
	}
	var relErr float64
	for i := range n {
		for j := i + 1; j < n; j++ {
			a, b := v.Sites[i], v.Sites[j]
			l := topoLink{From: a.Name, To: b.Name, X1: a.X, Y1: a.Y, X2: b.X, Y2: b.Y,
				MidX: round1((a.X + b.X) / 2), MidY: round1((a.Y + b.Y) / 2), Known: known[i][j]}
			v.Pairs++
			if l.Known {
				v.Known++
				l.Title = fmt.Sprintf("%s ↔ %s: %s", a.Name, b.Name, pairRTT(s.RTTMs, i, j))
				if d[i][j] > 0 {
					relErr += math.Abs(math.Hypot(pts[i].X-pts[j].X, pts[i].Y-pts[j].Y)-d[i][j]) / d[i][j]
				}
			} else {
				l.Title = fmt.Sprintf("%s ↔ %s: unknown (never measured or stale); placed by the known links", a.Name, b.Name)
			}
			v.Links = append(v.Links, l)
		}
	}
	// Unknown links first, so that the known ones are drawn over them.
	sort.SliceStable(v.Links, func(i, j int) bool { return !v.Links[i].Known && v.Links[j].Known })
	if v.Known > 0 {
		v.Fit = fmt.Sprintf("%.0f %%", 100*relErr/float64(v.Known))
	}
	return v
}

// topoGap is the least space between two sites' circles, in px;
// topoMinShrink the least their radii are scaled by before sites move.
const (
	topoGap        = 2.0
	topoMinShrink  = 0.5
	topoRelaxSteps = 100
)

// separate keeps the sites' circles apart. First the radii shrink, by one
// factor for all (so that area still tells traffic) and to no less than
// half, until the nearest pair no longer overlaps; sites nearer than that
// (almost 0 ms apart) then move apart, each overlapping pair along the line
// between them (coincident ones along a direction of their own) by half
// the overlap, a few rounds at most, inside the view. Sites MDS placed
// apart do not move. If the view is too crowded even so, the radii shrink
// again until no two circles overlap.
func separate(sites []topoSite) {
	n := len(sites)
	shrink := func(floor float64) {
		f := 1.0
		for i := range n {
			for j := i + 1; j < n; j++ {
				d := math.Hypot(sites[j].X-sites[i].X, sites[j].Y-sites[i].Y)
				if r := sites[i].R + sites[j].R; r+topoGap > d {
					f = math.Min(f, math.Max(d-topoGap, 0)/r)
				}
			}
		}
		f = math.Max(f, floor)
		if f < 1 {
			for i := range sites {
				sites[i].R = math.Floor(sites[i].R*f*10) / 10
			}
		}
	}
	shrink(topoMinShrink)
	clamp := func(t *topoSite) {
		t.X = math.Min(math.Max(t.X, t.R), topoWidth-t.R)
		t.Y = math.Min(math.Max(t.Y, t.R), topoHeight-t.R)
	}
	for range topoRelaxSteps {
		moved := false
		for i := range n {
			for j := i + 1; j < n; j++ {
				a, b := &sites[i], &sites[j]
				need := a.R + b.R + topoGap
				dx, dy := b.X-a.X, b.Y-a.Y
				d := math.Hypot(dx, dy)
				if d >= need {
					continue
				}
				ux, uy := dx/d, dy/d
				if d < 1e-6 {
					// A direction of the pair's own (the golden angle
					// apart), so that coincident sites fan out.
					theta := float64(i*n+j) * math.Pi * (3 - math.Sqrt(5))
					ux, uy = math.Cos(theta), math.Sin(theta)
				}
				push := (need - d) / 2
				a.X, a.Y = a.X-ux*push, a.Y-uy*push
				b.X, b.Y = b.X+ux*push, b.Y+uy*push
				clamp(a)
				clamp(b)
				moved = true
			}
		}
		if !moved {
			break
		}
	}
	// Rounded to 0.1 px for the page; the last shrink has no floor.
	for i := range sites {
		sites[i].X, sites[i].Y = round1(sites[i].X), round1(sites[i].Y)
	}
	shrink(0)
}

// pairRTT says a pair's RTT each way it is known.
func pairRTT(rtt [][]*float64, i, j int) string {
	var parts []string
	for _, v := range []*float64{rtt[i][j], rtt[j][i]} {
		if v != nil {
			parts = append(parts, fmt.Sprintf("%.1f ms", *v))
		}
	}
	if len(parts) == 2 && parts[0] == parts[1] {
		parts = parts[:1]
	}
	return strings.Join(parts, " / ")
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
