package probe

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
)

// CPUTimes is the aggregate "cpu" line of /proc/stat, in clock ticks.
type CPUTimes struct {
	Idle, Total uint64 // Idle includes iowait
}

// ParseProcStat reads the aggregate cpu line of /proc/stat.
func ParseProcStat(data []byte) (CPUTimes, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 5 {
			return CPUTimes{}, fmt.Errorf("/proc/stat cpu line has %d fields, want at least 5", len(f))
		}
		var t CPUTimes
		// user nice system idle iowait irq softirq steal [guest guest_nice]:
		// guest time is already counted in user and nice, so stop at steal.
		for i, s := range f[1:min(len(f), 9)] {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return CPUTimes{}, fmt.Errorf("/proc/stat cpu field %d: %w", i+1, err)
			}
			t.Total += v
			if i == 3 || i == 4 {
				t.Idle += v
			}
		}
		return t, nil
	}
	return CPUTimes{}, errors.New("/proc/stat has no aggregate cpu line")
}

// Utilisation is the busy share of the CPU between two samples, 0..1.
func Utilisation(prev, cur CPUTimes) float64 {
	if cur.Total <= prev.Total || cur.Idle < prev.Idle {
		return 0
	}
	total := float64(cur.Total - prev.Total)
	busy := total - float64(cur.Idle-prev.Idle)
	return min(max(busy/total, 0), 1)
}

// ParsePSI reads a /proc/pressure/<resource> file: "some" and (where the
// kernel has it) "full" lines with avg10 in percent.
func ParsePSI(data []byte) (*ningv1.Pressure, error) {
	p := &ningv1.Pressure{}
	seen := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		var dst *float64
		switch f[0] {
		case "some":
			dst = &p.SomeAvg10
		case "full":
			dst = &p.FullAvg10
		default:
			return nil, fmt.Errorf("PSI line starts with %q, want some or full", f[0])
		}
		found := false
		for _, kv := range f[1:] {
			if v, ok := strings.CutPrefix(kv, "avg10="); ok {
				x, err := strconv.ParseFloat(v, 64)
				if err != nil || x < 0 || x > 100 {
					return nil, fmt.Errorf("PSI %s avg10=%q: want a number in 0..100", f[0], v)
				}
				*dst, found, seen = x, true, true
			}
		}
		if !found {
			return nil, fmt.Errorf("PSI %s line has no avg10", f[0])
		}
	}
	if !seen {
		return nil, errors.New("PSI file has no some or full line")
	}
	return p, nil
}

// LoadReader reads this node's CPU utilisation (from /proc/stat deltas
// between calls) and PSI. Missing PSI files (kernels without
// CONFIG_PSI or with psi=0) give zeros and one log line.
type LoadReader struct {
	procRoot string
	log      *slog.Logger

	mu       sync.Mutex
	prev     CPUTimes
	havePrev bool
	warned   bool
}

// NewLoadReader reads under procRoot (normally /proc).
func NewLoadReader(procRoot string, log *slog.Logger) *LoadReader {
	return &LoadReader{procRoot: procRoot, log: log}
}

// Read returns the load since the previous call (the first call primes the
// CPU counters and reports 0 utilisation).
func (r *LoadReader) Read() (*ningv1.NodeLoad, error) {
	data, err := os.ReadFile(filepath.Join(r.procRoot, "stat"))
	if err != nil {
		return nil, fmt.Errorf("reading CPU times: %w", err)
	}
	cur, err := ParseProcStat(data)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	load := &ningv1.NodeLoad{Cpu: &ningv1.Pressure{}, Memory: &ningv1.Pressure{}, Io: &ningv1.Pressure{}}
	if r.havePrev {
		load.CpuUtilisation = Utilisation(r.prev, cur)
	}
	r.prev, r.havePrev = cur, true
	for res, dst := range map[string]**ningv1.Pressure{"cpu": &load.Cpu, "memory": &load.Memory, "io": &load.Io} {
		data, err := os.ReadFile(filepath.Join(r.procRoot, "pressure", res))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || isUnsupported(err) {
			if !r.warned {
				r.warned = true
				r.log.Info("PSI not available on this node; reporting zero pressure", "err", err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading PSI %s: %w", res, err)
		}
		p, err := ParsePSI(data)
		if err != nil {
			return nil, fmt.Errorf("PSI %s: %w", res, err)
		}
		*dst = p
	}
	return load, nil
}

// isUnsupported: with psi=0 the files exist but reading them fails with EOPNOTSUPP.
func isUnsupported(err error) bool {
	return err != nil && strings.Contains(err.Error(), "not supported")
}
