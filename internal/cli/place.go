package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ning-edge/ning/internal/placement"
	"github.com/ning-edge/ning/internal/policy"
	"github.com/ning-edge/ning/internal/topology"
)

type placeOptions struct {
	file          string
	replicas      int
	perReplicaRPS float64
	delayLayers   string
	output        string
}

func newPlaceCommand() *cobra.Command {
	o := placeOptions{}
	cmd := &cobra.Command{
		Use:   "place -f TOPOLOGY.yaml --replicas N",
		Short: "Plan where a workload's replicas should run, offline",
		Long: `place reads a topology file (sites, their traffic and capacity, the RTT between
them) and prints where N replicas of a workload should run to minimise the
traffic-weighted mean RTT: ning's plan, the exact optimum when it is computable
(with the plan's gap to it), and the baselines ning is measured against:

  spread           even over sites, as default topology spreading does
  busiest-nearest  the Ning seed: fill sites in order of RTT from the busiest
  seed-extender    seed 004's extender score, with its semantics corrected

Without --per-replica-rps each site's traffic is served by the nearest replica;
with it, a replica serves at most that many requests/s and traffic is routed at
least cost over replicas with spare capacity.

--delay-layers 30ms,80ms also prints seed 002's delay layers ("delay
zones"): for each delay, the sites grouped into clusters in which every pair is
within that delay of each other (an unknown RTT joins no two sites). The
clusters partition the sites. With --delay-layers, --replicas may be left out
to print only the layers.

Ctrl-C (SIGINT) or SIGTERM stops the planning within milliseconds, with an
error that names the signal.`,
		Example: `  ning place -f examples/edge-city.yaml --replicas 4
  ning place -f examples/continental.yaml --replicas 3 --per-replica-rps 400 -o json
  ning place -f examples/edge-city.yaml --delay-layers 5ms,10ms -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd)
			defer stop()
			return runPlace(ctx, cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "topology file (YAML as in the README; required)")
	f.IntVar(&o.replicas, "replicas", 0, "number of replicas to place (required unless --delay-layers is given)")
	f.Float64Var(&o.perReplicaRPS, "per-replica-rps", 0, "requests/s one replica can serve (0: no limit)")
	f.StringVar(&o.delayLayers, "delay-layers", "", "comma-separated delays (e.g. 30ms,80ms) to cluster the sites for: print each layer's delay zones")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

// PlaceResult is the JSON shape of `ning place -o json`. A weighted RTT is
// null when it is unknown: some traffic is served over a site pair without an
// RTT in the file.
type PlaceResult struct {
	Placement     map[string]int           `json:"placement"`
	WeightedRTTms *float64                 `json:"weightedRTTms"`
	Optimal       *PlacementCost           `json:"optimal"`
	GapPercent    *float64                 `json:"gapPercent,omitempty"`
	OptimalNote   string                   `json:"optimalNote,omitempty"`
	Baselines     map[string]PlacementCost `json:"baselines"`
	// DelayLayers maps each --delay-layers delay to its clusters of sites.
	DelayLayers map[string][][]string `json:"delayLayers,omitempty"`
}

// layersResult is the JSON shape of `ning place --delay-layers` without
// --replicas.
type layersResult struct {
	DelayLayers map[string][][]string `json:"delayLayers"`
}

// PlacementCost is a placement with its traffic-weighted mean RTT.
type PlacementCost struct {
	Placement     map[string]int `json:"placement"`
	WeightedRTTms *float64       `json:"weightedRTTms"`
}

func runPlace(ctx context.Context, out io.Writer, o placeOptions) error {
	if o.output != "table" && o.output != "json" {
		return fmt.Errorf("--output %q: want table or json", o.output)
	}
	delays, err := placement.ParseDelayLayers(o.delayLayers)
	if err != nil {
		return fmt.Errorf("--delay-layers: %w", err)
	}
	if o.replicas < 0 || (o.replicas == 0 && len(delays) == 0) {
		return fmt.Errorf("--replicas %d: want at least 1", o.replicas)
	}
	data, err := os.ReadFile(o.file)
	if err != nil {
		return fmt.Errorf("reading topology: %w", err)
	}
	spec, err := topology.ParseSpec(data)
	if err != nil {
		return fmt.Errorf("%s: %w", o.file, err)
	}
	p := placement.FromSpec(spec, o.replicas, o.perReplicaRPS)
	var layers map[string][][]string
	if len(delays) > 0 {
		layers = placement.NewLayers(p.Sites, p.RTT, delays).Named()
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if o.replicas == 0 {
		if o.output == "json" {
			return enc.Encode(layersResult{DelayLayers: layers})
		}
		return writeDelayZones(out, delays, layers)
	}
	res, err := Place(ctx, p)
	if err != nil {
		return fmt.Errorf("%s: %w", o.file, err)
	}
	res.DelayLayers = layers
	if o.output == "json" {
		return enc.Encode(res)
	}
	if err := writePlaceTable(out, p, res); err != nil {
		return err
	}
	if len(delays) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(out); err != nil {
		return err
	}
	return writeDelayZones(out, delays, layers)
}

// writeDelayZones prints each delay layer's clusters, one line a layer:
// "delay zones within 30ms: [a b] [c]".
func writeDelayZones(out io.Writer, delays []float64, layers map[string][][]string) error {
	w := &errWriter{w: out}
	for _, d := range delays {
		key := placement.FormatDelay(d)
		w.printf("delay zones within %s: %s\n", key, placement.FormatZones(layers[key]))
	}
	return w.err
}

// Place runs the planner, the exact optimum and the baselines on one problem;
// it stops soon after ctx ends, with an error wrapping ctx.Err().
func Place(ctx context.Context, p *placement.Problem) (*PlaceResult, error) {
	plan, err := placement.Plan(ctx, p)
	if err != nil {
		return nil, err
	}
	res := &PlaceResult{
		Placement:     plan.Map(p.Sites),
		WeightedRTTms: meanRTT(p, plan),
		Baselines:     map[string]PlacementCost{},
	}
	opt, err := placement.Optimal(ctx, p)
	var tooLarge *placement.TooLargeError
	switch {
	case errors.As(err, &tooLarge):
		res.OptimalNote = err.Error()
	case err != nil:
		return nil, err
	default:
		res.Optimal = &PlacementCost{Placement: opt.Map(p.Sites), WeightedRTTms: meanRTT(p, opt)}
		oc, optKnown := policy.MeanRTT(p, opt)
		pc, planKnown := policy.MeanRTT(p, plan)
		if optKnown && planKnown {
			g := 0.0
			if oc > 0 {
				g = round3(100 * (pc - oc) / oc)
			}
			res.GapPercent = &g
		} else {
			res.OptimalNote = "no gap to the optimum: a weighted RTT is unknown (some traffic is served over a site pair without an RTT)"
		}
	}
	for name, b := range placement.Baselines(p) {
		res.Baselines[name] = PlacementCost{Placement: b.Map(p.Sites), WeightedRTTms: meanRTT(p, b)}
	}
	return res, nil
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// meanRTT is x's weighted mean RTT to three decimals, nil when unknown.
func meanRTT(p *placement.Problem, x placement.Placement) *float64 {
	v, known := policy.MeanRTT(p, x)
	if !known {
		return nil
	}
	v = round3(v)
	return &v
}

// msText writes a weighted RTT of the table (ms, three decimals) or says it
// is unknown, as every ning output does.
func msText(v *float64) string {
	if v == nil {
		return policy.FormatMS(0, false)
	}
	return fmt.Sprintf("%.3f", *v)
}

func writePlaceTable(out io.Writer, p *placement.Problem, res *PlaceResult) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	w := &errWriter{w: tw}
	header := []string{"SITE", "TRAFFIC", "NING"}
	if res.Optimal != nil {
		header = append(header, "OPTIMAL")
	}
	names := sortedNames(res.Baselines)
	for _, n := range names {
		header = append(header, strings.ToUpper(n))
	}
	w.printf("%s\n", strings.Join(header, "\t"))
	for i, site := range p.Sites {
		row := []string{site, fmt.Sprint(p.Traffic[i]), fmt.Sprint(res.Placement[site])}
		if res.Optimal != nil {
			row = append(row, fmt.Sprint(res.Optimal.Placement[site]))
		}
		for _, n := range names {
			row = append(row, fmt.Sprint(res.Baselines[n].Placement[site]))
		}
		w.printf("%s\n", strings.Join(row, "\t"))
	}
	row := []string{"weighted RTT (ms)", "", msText(res.WeightedRTTms)}
	if res.Optimal != nil {
		row = append(row, msText(res.Optimal.WeightedRTTms))
	}
	for _, n := range names {
		row = append(row, msText(res.Baselines[n].WeightedRTTms))
	}
	w.printf("%s\n", strings.Join(row, "\t"))
	if w.err != nil {
		return w.err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	w = &errWriter{w: out}
	if res.GapPercent != nil {
		w.printf("\nning's plan is %.3f%% above the exact optimum.\n", *res.GapPercent)
	} else if res.Optimal == nil {
		w.printf("\nexact optimum not computed: %s\n", res.OptimalNote)
	} else {
		w.printf("\n%s.\n", res.OptimalNote)
	}
	return w.err
}

// errWriter keeps the first write error, so a run of prints is checked once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
