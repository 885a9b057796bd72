//go:build unix

package dashboard

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"math"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"
)

// Environment of the browser test.
const (
	// chromiumEnv names the browser binary (default: chromium on PATH).
	chromiumEnv = "NING_CHROMIUM"
	// requireChromiumEnv=1 fails the test instead of skipping it when there
	// is no browser (make test-dashboard sets it).
	requireChromiumEnv = "NING_REQUIRE_CHROMIUM"
	// artefactsEnv names a directory for the screenshot (default: a
	// temporary directory, logged).
	artefactsEnv = "NING_ARTEFACTS"
)

func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(chromiumEnv); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no headless browser: install Debian's chromium (apt-get install -y chromium) or set " + chromiumEnv
	if os.Getenv(requireChromiumEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// runBrowser runs headless Chromium on url with args and returns its stdout.
// Virtual time lets the page's script run its refreshes without the test
// sleeping; the process group is killed if it outlives ctx.
func runBrowser(ctx context.Context, t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	all := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
		"--user-data-dir=" + t.TempDir(), "--window-size=1280,1500", "--virtual-time-budget=6000",
	}, args...)
	cmd := exec.CommandContext(ctx, bin, append(all, url)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstderr:\n%s", bin, err, stderr.String())
	}
	return stdout.String()
}

// ticking serves the fixture with its time one minute later on each call, so
// that the test can tell the page's own rendering from the script's refresh.
type ticking struct {
	t     *testing.T
	calls atomic.Int64
}

func (s *ticking) Snapshot() Snapshot {
	f := fixture(s.t)
	f.Time = f.Time.Add(time.Duration(s.calls.Add(1)-1) * time.Minute)
	return f
}

func TestBrowser(t *testing.T) {
	bin := chromium(t)
	src := &ticking{t: t}
	srv := httptest.NewServer(Handler(src))
	defer srv.Close()

	dom := runBrowser(t.Context(), t, bin, srv.URL+"/", "--dump-dom")
	// The script ran, fetched a fresh rendering and put it in the page.
	if !strings.Contains(dom, `data-live="1"`) || !strings.Contains(dom, `<span id="conn" class="conn live">live</span>`) {
		t.Errorf("the page's script did not refresh the content:\n%.2000s", dom)
	}
	if src.calls.Load() < 2 {
		t.Errorf("the browser fetched %d renderings, want the page and at least one refresh", src.calls.Load())
	}
	if m := regexp.MustCompile(`at (\S+) · busiest site`).FindStringSubmatch(dom); m == nil || m[1] == t0.Format(time.RFC3339) {
		t.Errorf("the content shown is the page's first rendering, not a refresh: %v", m)
	}
	for _, site := range []string{"austin", "dallas", "edge-x", "paris", "toronto"} {
		if !strings.Contains(dom, `data-site="`+site+`"`) {
			t.Errorf("site %s is not on the rendered page", site)
		}
	}
	heat := regexp.MustCompile(`(?s)<table id="heatmap".*?</table>`).FindString(dom)
	if n := strings.Count(heat, `<td class="rtt`); n != 25 {
		t.Errorf("the rendered heatmap has %d cells, want 25", n)
	}
	if !strings.Contains(heat, ">34.0</td>") || !strings.Contains(heat, `class="rtt unknown"`) {
		t.Errorf("the rendered heatmap lacks dallas-toronto's 34.0 ms or an unknown cell:\n%s", heat)
	}
	checkBands(t, dom, []string{"austin", "dallas", "edge-x", "toronto"})

	shot := screenshot(t, bin, srv.URL+"/", "dashboard.png")
	checkScreenshot(t, shot)
}

// TestBrowserStackedChart renders the case lines drew as one: four sites at
// one replica each. The chart must show four bands, each in its site's
// colour, each as tall as a quarter of the plot.
func TestBrowserStackedChart(t *testing.T) {
	bin := chromium(t)
	s := fixture(t)
	s.History = oneEach(12)
	srv := httptest.NewServer(Handler(fixed(s)))
	defer srv.Close()

	dom := runBrowser(t.Context(), t, bin, srv.URL+"/", "--dump-dom")
	sites := []string{"austin", "dallas", "edge-x", "toronto"}
	checkBands(t, dom, sites)

	shot := screenshot(t, bin, srv.URL+"/", "dashboard-replicas-stacked.png")
	checkScreenshot(t, shot)
	// The page colours each site as newPage does; in the screenshot each
	// band covers about 660 x 49 px of its colour, far more than the site's
	// swatches and traffic bar (at most 160 x 12 px) could.
	img := decodePNG(t, shot)
	colour := newPage(s).Sites
	for _, site := range sites {
		var hex string
		for _, r := range colour {
			if r.Name == site {
				hex = r.Colour
			}
		}
		var cr, cg, cb uint32
		if _, err := fmt.Sscanf(hex, "#%02x%02x%02x", &cr, &cg, &cb); err != nil {
			t.Fatalf("site %s colour %q: %v", site, hex, err)
		}
		n := 0
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				r, g, bl, _ := img.At(x, y).RGBA()
				if near(r>>8, cr) && near(g>>8, cg) && near(bl>>8, cb) {
					n++
				}
			}
		}
		if n < 15000 {
			t.Errorf("site %s: %d pixels of its colour %s in the screenshot, want a band of at least 15000", site, n, hex)
		}
	}
}

func near(a, b uint32) bool { return a+3 >= b && b+3 >= a }

// checkBands checks that the rendered chart has one band per site, each with
// its own outline and colour.
func checkBands(t *testing.T, dom string, sites []string) {
	t.Helper()
	bands := regexp.MustCompile(`<polygon class="series" data-site="([^"]+)" points="([^"]+)" fill="([^"]+)"`).FindAllStringSubmatch(dom, -1)
	var got []string
	points, fills := map[string]bool{}, map[string]bool{}
	for _, b := range bands {
		got = append(got, b[1])
		points[b[2]], fills[b[3]] = true, true
	}
	if strings.Join(got, " ") != strings.Join(sites, " ") {
		t.Errorf("the chart's bands are %v, want one per site with replicas in the history %v", got, sites)
	}
	if len(points) != len(bands) || len(fills) != len(bands) {
		t.Errorf("%d bands but %d distinct outlines and %d distinct colours: some sites are drawn on top of each other", len(bands), len(points), len(fills))
	}
}

// screenshot saves the page at url as name in the test artefacts directory
// ($NING_ARTEFACTS, else a temporary one) and returns its path.
func screenshot(t *testing.T, bin, url, name string) string {
	t.Helper()
	dir := os.Getenv(artefactsEnv)
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(shot)
	runBrowser(t.Context(), t, bin, url, "--screenshot="+shot, "--hide-scrollbars", "--force-color-profile=srgb")
	t.Logf("screenshot: %s", shot)
	return shot
}

func decodePNG(t *testing.T, file string) image.Image {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", file, err)
	}
	return img
}

// checkScreenshot checks that the file is a PNG of the window that is not
// one flat colour.
func checkScreenshot(t *testing.T, file string) {
	t.Helper()
	img := decodePNG(t, file)
	b := img.Bounds()
	if b.Dx() != 1280 || b.Dy() != 1500 {
		t.Errorf("screenshot is %dx%d, want the 1280x1500 window", b.Dx(), b.Dy())
	}
	colours := map[string]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[fmt.Sprint(r>>8, g>>8, bl>>8)] = true
		}
	}
	if len(colours) < 20 {
		t.Errorf("screenshot has only %d colours: the page did not render", len(colours))
	}
}

// withComparison is the fixture with a demo's comparison of web.
func withComparison(s Snapshot) Snapshot {
	s.Comparison = &Comparison{Workload: "shop/web", Basis: "Modelled: the fixture's RTTs.", Rows: []CompareRow{
		{Name: CompareNing, WeightedRTTMs: ptr.To(6.4), Placement: map[string]int{"dallas": 3, "toronto": 1}},
		{Name: CompareDefault, WeightedRTTMs: ptr.To(19.2), Placement: map[string]int{"austin": 2, "toronto": 2}},
		{Name: CompareOptimum, WeightedRTTMs: ptr.To(5.8), Placement: map[string]int{"dallas": 2, "toronto": 1, "austin": 1}},
	}}
	return s
}

// TestBrowserTopology renders the topology view and the comparison: every
// site a circle placed by its RTTs (the measured pairs nearer on the page
// than the farther ones, paris far from dallas), sized by traffic, with its
// replicas; the six pairs without an RTT drawn as unknown; and the three
// placements with their weighted RTTs.
func TestBrowserTopology(t *testing.T) {
	bin := chromium(t)
	s := withComparison(fixture(t))
	srv := httptest.NewServer(Handler(fixed(s)))
	defer srv.Close()

	dom := runBrowser(t.Context(), t, bin, srv.URL+"/", "--dump-dom")
	type circle struct{ x, y, r float64 }
	sites := map[string]circle{}
	replicas := map[string]string{}
	for _, m := range regexp.MustCompile(`<g class="topo-site" data-site="([^"]+)" data-x="([^"]+)" data-y="([^"]+)" data-r="([^"]+)" data-replicas="([^"]+)"`).FindAllStringSubmatch(dom, -1) {
		var c circle
		for i, p := range []*float64{&c.x, &c.y, &c.r} {
			if _, err := fmt.Sscan(m[i+2], p); err != nil {
				t.Fatalf("site %s: %v", m[1], err)
			}
		}
		sites[m[1]], replicas[m[1]] = c, m[5]
	}
	if len(sites) != 5 {
		t.Fatalf("the topology view has sites %v, want the fixture's five", sites)
	}
	dist := func(a, b string) float64 {
		return math.Hypot(sites[a].x-sites[b].x, sites[a].y-sites[b].y)
	}
	// dallas-austin 8 ms is nearer than dallas-toronto 34 and toronto-austin
	// 40 ms, both nearer than dallas-paris 95 ms. (34 and 40 are too close
	// for their order to survive the plane: the sites without RTTs pull.)
	if !(dist("dallas", "austin") < min(dist("dallas", "toronto"), dist("toronto", "austin")) &&
		max(dist("dallas", "toronto"), dist("toronto", "austin")) < dist("dallas", "paris")) {
		t.Errorf("distances on the page do not follow the RTTs: dallas-austin %.0f, dallas-toronto %.0f, toronto-austin %.0f, dallas-paris %.0f px",
			dist("dallas", "austin"), dist("dallas", "toronto"), dist("toronto", "austin"), dist("dallas", "paris"))
	}
	if !(sites["dallas"].r > sites["toronto"].r && sites["toronto"].r > sites["austin"].r && sites["austin"].r > sites["paris"].r) {
		t.Errorf("circle radii do not follow traffic (dallas 100 > toronto 20 > austin 5 req/s > paris unknown): %v", sites)
	}
	if replicas["dallas"] != "3" || replicas["toronto"] != "1" || replicas["edge-x"] != "1" {
		t.Errorf("replicas per site on the view: %v", replicas)
	}
	topo := regexp.MustCompile(`(?s)<svg id="topo".*?</svg>`).FindString(dom)
	if n := strings.Count(topo, `class="replica"`); n != 5 {
		t.Errorf("%d replica dots, want 5 (dallas 3, toronto 1, edge-x 1)", n)
	}
	if k, u := strings.Count(topo, `class="link known"`), strings.Count(topo, `class="link unknown"`); k != 4 || u != 6 {
		t.Errorf("%d known and %d unknown links, want 4 and 6 (edge-x to all, paris to toronto and austin)", k, u)
	}
	if !strings.Contains(topo, `data-link="austin|edge-x"`) || !strings.Contains(topo, "austin ↔ edge-x: unknown") {
		t.Errorf("the unknown austin-edge-x link is not drawn as unknown:\n%.3000s", topo)
	}
	cmpSection := regexp.MustCompile(`(?s)<section id="compare">.*?</section>`).FindString(dom)
	for _, want := range []string{"6.40 ms", "19.20 ms", "5.80 ms", "+10 % vs the optimum", "+231 % vs the optimum", "dallas: 3, toronto: 1"} {
		if !strings.Contains(cmpSection, want) {
			t.Errorf("the comparison lacks %q:\n%s", want, cmpSection)
		}
	}

	shot := screenshot(t, bin, srv.URL+"/", "dashboard-topology.png")
	checkScreenshot(t, shot)
}

// goldenExplainer serves ning explain's golden table of a Deployment
// (internal/explain's testdata), so that the page shows what it will hold.
type goldenExplainer struct {
	fixed
	t *testing.T
}

func (g goldenExplainer) Explain(context.Context, string, string, string) (string, error) {
	b, err := os.ReadFile("../explain/testdata/deployment.golden")
	if err != nil {
		g.t.Fatal(err)
	}
	return string(b), nil
}

// TestBrowserExplain follows the workload table's link to a workload's
// explain page, checks that it shows explain's table, and screenshots it.
func TestBrowserExplain(t *testing.T) {
	bin := chromium(t)
	srv := httptest.NewServer(Handler(goldenExplainer{fixed(fixture(t)), t}))
	defer srv.Close()
	dom := runBrowser(t.Context(), t, bin, srv.URL+"/", "--dump-dom")
	link := regexp.MustCompile(`<a href="(explain/deployment/shop/web)"`).FindStringSubmatch(dom)
	if link == nil {
		t.Fatalf("no link to shop/web's explain page on the dashboard:\n%.3000s", dom)
	}
	page := runBrowser(t.Context(), t, bin, srv.URL+"/"+link[1], "--dump-dom")
	pre := regexp.MustCompile(`(?s)<pre id="explain-text">(.*?)</pre>`).FindStringSubmatch(page)
	if pre == nil || !strings.HasPrefix(pre[1], "deployment shop/web: its next replica\n") || !strings.Contains(pre[1], "delay constraints: none (no delay_&lt;from&gt; label)") {
		t.Errorf("the explain page does not show explain's table:\n%.3000s", page)
	}
	if !strings.Contains(page, `href="../../../static/dashboard.css"`) {
		t.Error("the explain page's style sheet is not the dashboard's")
	}
	shot := screenshot(t, bin, srv.URL+"/"+link[1], "dashboard-explain.png")
	checkScreenshot(t, shot)
}

// TestBrowserZones renders the delay zones of 10 ms and 50 ms: dallas and
// austin (8 ms) share a zone within 10 ms, toronto joins them within 50 ms
// (34 and 40 ms), and paris (95 ms from dallas, unknown from the rest) and
// edge-x (no RTTs) stay alone in both.
func TestBrowserZones(t *testing.T) {
	bin := chromium(t)
	in := fixtureInputs()
	in.delayLayers = []float64{50, 10}
	s := build(in, fixtureStore(t))
	s.Time, s.Synced = t0, true
	srv := httptest.NewServer(Handler(fixed(s)))
	defer srv.Close()

	dom := runBrowser(t.Context(), t, bin, srv.URL+"/", "--dump-dom")
	section := regexp.MustCompile(`(?s)<section id="zones">.*?</section>`).FindString(dom)
	var got []string
	for _, row := range regexp.MustCompile(`(?s)<tr class="zone-layer" data-delay="([^"]+)">(.*?)</tr>`).FindAllStringSubmatch(section, -1) {
		var zones []string
		for _, z := range regexp.MustCompile(`<span class="zone[^"]*" data-sites="([^"]+)">`).FindAllStringSubmatch(row[2], -1) {
			zones = append(zones, "["+z[1]+"]")
		}
		got = append(got, row[1]+": "+strings.Join(zones, " "))
	}
	want := []string{
		"10ms: [austin dallas] [edge-x] [paris] [toronto]",
		"50ms: [austin dallas toronto] [edge-x] [paris]",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("the rendered delay zones, smallest delay first (-want +got):\n%s\n%s", d, section)
	}
	if n := strings.Count(section, `class="zone alone"`); n != 5 {
		t.Errorf("%d zones of one site drawn alone, want 5 (toronto, paris, edge-x within 10 ms; paris, edge-x within 50 ms)", n)
	}

	shot := screenshot(t, bin, srv.URL+"/#zones", "dashboard-zones.png")
	checkScreenshot(t, shot)
}

// TestBrowserMeasured renders the lab's measured response times from the
// repository's own bench/lab.json (preferClose, steady) beside the
// comparison: one row for each of ning, the default scheduler and the
// optimum, with the file's p95, and screenshots the section.
func TestBrowserMeasured(t *testing.T) {
	bin := chromium(t)
	m, err := LoadMeasured("../../bench/lab.json", "preferClose", "steady")
	if err != nil {
		t.Fatal(err)
	}
	s := fixture(t)
	s.Measured = m
	srv := httptest.NewServer(Handler(fixed(s)))
	defer srv.Close()

	dom := runBrowser(t.Context(), t, bin, srv.URL+"/", "--dump-dom")
	section := regexp.MustCompile(`(?s)<section id="measured">.*?</section>`).FindString(dom)
	if !strings.Contains(section, "routing <strong>preferClose</strong>, scenario <strong>steady</strong>") {
		t.Errorf("the measured section does not name its routing and scenario:\n%.2000s", section)
	}
	rows := regexp.MustCompile(`<tr class="measured" data-row="([^"]+)"><td>[^<]*</td><td class="num">[^<]*</td><td class="num">([^<]*)</td>`).FindAllStringSubmatch(section, -1)
	if len(rows) != len(m.Rows) {
		t.Fatalf("%d measured rows rendered, want %d:\n%.2000s", len(rows), len(m.Rows), section)
	}
	for i, r := range rows {
		if want := m.Rows[i]; r[1] != want.Name || r[2] != fmt.Sprintf("%.2f ms", want.P95Ms) {
			t.Errorf("row %d: %s with p95 %q, want %s with %.2f ms from the file", i, r[1], r[2], want.Name, want.P95Ms)
		}
	}
	shot := screenshot(t, bin, srv.URL+"/#measured", "dashboard-measured.png")
	checkScreenshot(t, shot)
}
