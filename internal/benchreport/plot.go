package benchreport

import (
	"fmt"
	"image/color"
	"math/rand/v2"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

func randFor(seed uint64, n int) *rand.Rand { return rand.New(rand.NewPCG(seed, uint64(n))) }

var palette = []color.Color{
	color.RGBA{R: 0x1b, G: 0x9e, B: 0x77, A: 0xff},
	color.RGBA{R: 0xd9, G: 0x5f, B: 0x02, A: 0xff},
	color.RGBA{R: 0x75, G: 0x70, B: 0xb3, A: 0xff},
	color.RGBA{R: 0xe7, G: 0x29, B: 0x8a, A: 0xff},
}

// plotGaps draws, per method, the share of instances within each gap to
// the optimum (an empirical CDF): the higher and further left, the better.
func plotGaps(file string, q *Quality) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Gap to the exact optimum, %d random instances", q.Instances)
	p.X.Label.Text = "weighted mean RTT above the optimum (%)"
	p.Y.Label.Text = "share of instances within (%)"
	p.Add(plotter.NewGrid())
	for i, name := range Methods {
		gaps := append([]float64(nil), q.Gaps[name]...)
		if len(gaps) == 0 {
			continue
		}
		sort.Float64s(gaps)
		pts := make(plotter.XYs, 0, len(gaps)+1)
		pts = append(pts, plotter.XY{X: 0, Y: 0})
		for k, g := range gaps {
			pts = append(pts, plotter.XY{X: g, Y: 100 * float64(k+1) / float64(len(gaps))})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(name, l)
	}
	p.Legend.Top, p.Legend.Left = false, false
	p.X.Max = 100
	return p.Save(7*vg.Inch, 4.5*vg.Inch, file)
}

// plotPlanner draws the planner's time against the number of sites, on
// log-log axes, with and without a per-replica rate limit.
func plotPlanner(file string, times []PlannerTime) error {
	p := plot.New()
	p.Title.Text = "Planner time (replicas = sites / 2)"
	p.X.Label.Text = "sites"
	p.Y.Label.Text = "milliseconds"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	for i, limited := range []bool{false, true} {
		var pts plotter.XYs
		for _, t := range times {
			if t.Limited == limited {
				pts = append(pts, plotter.XY{X: float64(t.Sites), Y: max(t.Millis, 0.001)})
			}
		}
		if len(pts) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		l.Color, s.Color = palette[i], palette[i]
		name := "nearest replica (p-median)"
		if limited {
			name = "per-replica rate limit (transport)"
		}
		p.Add(l, s)
		p.Legend.Add(name, l, s)
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p.Save(7*vg.Inch, 4.5*vg.Inch, file)
}

// Lines is a line plot: one named series per line, in the report's palette.
type Lines struct {
	Title, X, Y string
	Names       []string
	Series      []plotter.XYs
	// LogX draws the x axis on a log scale; XMax, when positive, cuts it.
	LogX bool
	XMax float64
}

// Save draws the plot into file (SVG or PNG by its extension).
func (ls Lines) Save(file string) error {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = ls.Title, ls.X, ls.Y
	if ls.LogX {
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	p.Add(plotter.NewGrid())
	for i, pts := range ls.Series {
		if len(pts) == 0 {
			continue
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(ls.Names[i], l)
	}
	p.Legend.Top, p.Legend.Left = false, false
	if ls.XMax > 0 {
		p.X.Max = ls.XMax
	}
	return p.Save(7*vg.Inch, 4.5*vg.Inch, file)
}
