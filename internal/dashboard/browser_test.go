//go:build unix

package dashboard

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
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
	if n := strings.Count(dom, `<polyline class="series"`); n != 4 {
		t.Errorf("the chart has %d lines, want one per site with replicas in the history (4)", n)
	}

	dir := os.Getenv(artefactsEnv)
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot, err := filepath.Abs(filepath.Join(dir, "dashboard.png"))
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(shot)
	runBrowser(t.Context(), t, bin, srv.URL+"/", "--screenshot="+shot, "--hide-scrollbars")
	checkScreenshot(t, shot)
	t.Logf("screenshot: %s", shot)
}

// checkScreenshot checks that the file is a PNG of the window that is not
// one flat colour.
func checkScreenshot(t *testing.T, file string) {
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
