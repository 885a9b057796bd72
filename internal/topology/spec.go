package topology

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxSpecBytes bounds the size of a topology file.
const MaxSpecBytes = 8 << 20

// Spec is a topology file: the sites, the traffic entering at each, how many
// replicas each can host, and the RTT between them.
//
//	sites:
//	  - {name: dallas, traffic: 100, capacity: 4, nodes: 2}
//	  - {name: toronto, traffic: 20, capacity: 4, nodes: 2}
//	latencyMs:              # RTT in ms; a missing direction takes the reverse one
//	  dallas: {toronto: 34}
type Spec struct {
	Sites     []SiteSpec                    `yaml:"sites" json:"sites"`
	LatencyMs map[string]map[string]float64 `yaml:"latencyMs" json:"latencyMs"`
}

// SiteSpec describes one site.
type SiteSpec struct {
	Name string `yaml:"name" json:"name"`
	// Traffic is the request rate (requests/s, or any consistent weight) that
	// enters the cluster at this site's gateway.
	Traffic float64 `yaml:"traffic" json:"traffic"`
	// Capacity is the most replicas of one workload the site can host; nil
	// means no limit.
	Capacity *int `yaml:"capacity,omitempty" json:"capacity,omitempty"`
	// Min is the fewest replicas the site must keep.
	Min int `yaml:"min,omitempty" json:"min,omitempty"`
	// Nodes is how many nodes the site has (used by the demo and benchmarks).
	Nodes int `yaml:"nodes,omitempty" json:"nodes,omitempty"`
}

// SiteNames returns the site names in file order.
func (s *Spec) SiteNames() []string {
	out := make([]string, len(s.Sites))
	for i, site := range s.Sites {
		out[i] = site.Name
	}
	return out
}

// Matrix returns the RTT matrix indexed like Sites. A missing direction takes
// the reverse one; a pair given in neither direction is +Inf (unknown); within
// a site the RTT is zero unless the file gives it.
func (s *Spec) Matrix() [][]float64 {
	n := len(s.Sites)
	m := make([][]float64, n)
	for i, a := range s.Sites {
		m[i] = make([]float64, n)
		for j, b := range s.Sites {
			if v, ok := s.LatencyMs[a.Name][b.Name]; ok {
				m[i][j] = v
			} else if v, ok := s.LatencyMs[b.Name][a.Name]; ok {
				m[i][j] = v
			} else if i == j {
				m[i][j] = 0
			} else {
				m[i][j] = math.Inf(1)
			}
		}
	}
	return m
}

// ParseSpec reads a topology file in YAML. Unknown fields, duplicate or unknown
// site names, negative, NaN or absurd RTTs are errors that name the field.
func ParseSpec(data []byte) (*Spec, error) {
	if len(data) > MaxSpecBytes {
		return nil, fmt.Errorf("topology file is %d bytes, more than the %d allowed", len(data), MaxSpecBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var spec Spec
	if err := dec.Decode(&spec); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("topology file is empty")
		}
		return nil, fmt.Errorf("topology file: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("topology file: more than one YAML document")
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	return &spec, nil
}

// Validate checks a Spec; the error names the offending field.
func (s *Spec) Validate() error {
	if len(s.Sites) == 0 {
		return errors.New("sites: at least one site is required")
	}
	index := make(map[string]int, len(s.Sites))
	for i, site := range s.Sites {
		path := fmt.Sprintf("sites[%d]", i)
		if err := validSiteName(site.Name); err != nil {
			return fmt.Errorf("%s.name: %w", path, err)
		}
		if j, dup := index[site.Name]; dup {
			return fmt.Errorf("%s.name: site %q is already defined at sites[%d]", path, site.Name, j)
		}
		index[site.Name] = i
		if math.IsNaN(site.Traffic) || math.IsInf(site.Traffic, 0) || site.Traffic < 0 {
			return fmt.Errorf("%s.traffic: %v is not a finite non-negative number", path, site.Traffic)
		}
		if site.Capacity != nil && *site.Capacity < 0 {
			return fmt.Errorf("%s.capacity: %d is negative", path, *site.Capacity)
		}
		if site.Min < 0 {
			return fmt.Errorf("%s.min: %d is negative", path, site.Min)
		}
		if site.Capacity != nil && site.Min > *site.Capacity {
			return fmt.Errorf("%s.min: %d is more than the site's capacity %d", path, site.Min, *site.Capacity)
		}
		if site.Nodes < 0 {
			return fmt.Errorf("%s.nodes: %d is negative", path, site.Nodes)
		}
	}
	for _, from := range sortedKeys(s.LatencyMs) {
		if _, ok := index[from]; !ok {
			return fmt.Errorf("latencyMs.%s: unknown site %q (not in sites)", from, from)
		}
		row := s.LatencyMs[from]
		for _, to := range sortedKeys(row) {
			path := fmt.Sprintf("latencyMs.%s.%s", from, to)
			if _, ok := index[to]; !ok {
				return fmt.Errorf("%s: unknown site %q (not in sites)", path, to)
			}
			if err := ValidateRTT(row[to]); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ParseCSVMatrix reads a square RTT matrix in CSV: the header row and the first
// column name the sites (the top-left cell is ignored), cell (row a, column b)
// is the RTT in ms from a to b, and an empty cell is unknown. The error names
// the line and column of the offending cell.
func ParseCSVMatrix(data []byte) (*Spec, error) {
	if len(data) > MaxSpecBytes {
		return nil, fmt.Errorf("matrix file is %d bytes, more than the %d allowed", len(data), MaxSpecBytes)
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.TrimLeadingSpace = true
	r.Comment = '#'
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("matrix file is empty")
	}
	if err != nil {
		return nil, fmt.Errorf("matrix file: %w", err)
	}
	names := header[1:]
	if len(names) == 0 {
		return nil, errors.New("matrix file: line 1: the header names no site")
	}
	spec := &Spec{LatencyMs: map[string]map[string]float64{}}
	cols := make(map[string]int, len(names))
	for i, name := range names {
		name = strings.TrimSpace(name)
		names[i] = name // the rows and the square check use the trimmed name
		if err := validSiteName(name); err != nil {
			return nil, fmt.Errorf("matrix file: line 1, column %d: %w", i+2, err)
		}
		if j, dup := cols[name]; dup {
			return nil, fmt.Errorf("matrix file: line 1, column %d: site %q is already named in column %d", i+2, name, j+2)
		}
		cols[name] = i
		spec.Sites = append(spec.Sites, SiteSpec{Name: name})
	}
	seen := map[string]int{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("matrix file: %w", err)
		}
		line, _ := r.FieldPos(0)
		from := strings.TrimSpace(rec[0])
		if _, ok := cols[from]; !ok {
			return nil, fmt.Errorf("matrix file: line %d, column 1: site %q is not in the header", line, from)
		}
		if prev, dup := seen[from]; dup {
			return nil, fmt.Errorf("matrix file: line %d, column 1: site %q already has a row at line %d", line, from, prev)
		}
		seen[from] = line
		row := map[string]float64{}
		for i, cell := range rec[1:] {
			cell = strings.TrimSpace(cell)
			if cell == "" {
				continue
			}
			v, err := strconv.ParseFloat(cell, 64)
			if err != nil {
				return nil, fmt.Errorf("matrix file: line %d, column %d: %q is not a number", line, i+2, cell)
			}
			if err := ValidateRTT(v); err != nil {
				return nil, fmt.Errorf("matrix file: line %d, column %d: %w", line, i+2, err)
			}
			row[names[i]] = v
		}
		spec.LatencyMs[from] = row
	}
	if len(seen) != len(names) {
		var missing []string
		for _, n := range names {
			if _, ok := seen[n]; !ok {
				missing = append(missing, n)
			}
		}
		return nil, fmt.Errorf("matrix file: not square: no row for %s", strings.Join(missing, ", "))
	}
	return spec, nil
}

// ParseFile reads a topology file in YAML or a CSV matrix, chosen by the name's
// extension (.csv is CSV, anything else YAML).
func ParseFile(name string, data []byte) (*Spec, error) {
	if strings.HasSuffix(strings.ToLower(name), ".csv") {
		return ParseCSVMatrix(data)
	}
	return ParseSpec(data)
}

// LoadSpec copies a spec's RTTs into the store as static figures, its
// sites' capacities (Capacities) and, when the spec gives any traffic (a CSV
// matrix gives none), its traffic as static rates.
func (s *Store) LoadSpec(spec *Spec) error {
	s.setCapacities(spec)
	for _, from := range sortedKeys(spec.LatencyMs) {
		for _, to := range sortedKeys(spec.LatencyMs[from]) {
			if err := s.SetStaticRTT(from, to, spec.LatencyMs[from][to]); err != nil {
				return fmt.Errorf("latencyMs.%s.%s: %w", from, to, err)
			}
		}
	}
	hasTraffic := false
	for _, site := range spec.Sites {
		hasTraffic = hasTraffic || site.Traffic > 0
	}
	for _, site := range spec.Sites {
		if !hasTraffic {
			break
		}
		if err := s.SetTraffic(site.Name, site.Traffic, s.clock.Now(), true); err != nil {
			return err
		}
	}
	return nil
}

// setCapacities replaces the store's site capacities by the spec's (a
// validated spec: at most MaxSpecBytes of sites, none negative).
func (s *Store) setCapacities(spec *Spec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.capacity)
	for _, site := range spec.Sites {
		if site.Capacity != nil {
			s.capacity[site.Name] = *site.Capacity
		}
	}
}
