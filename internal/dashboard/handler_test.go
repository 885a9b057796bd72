package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
)

type fixed Snapshot

func (f fixed) Snapshot() Snapshot { return Snapshot(f) }

func serve(t *testing.T, s Snapshot, method, target string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler(fixed(s)).ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	res := rec.Result()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func TestPage(t *testing.T) {
	res, body := serve(t, fixture(t), http.MethodGet, "/")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	for _, want := range []string{
		`<script src="static/dashboard.js">`,
		`data-refresh-ms="2000"`,
		`<table id="heatmap"`,
		`busiest site: <strong id="busiest">dallas</strong>`,
		`title="dallas → toronto: 34.00 ms">34.0</td>`,
		// Unknown is shown as unknown, in grey, never as 0.
		`<td class="rtt unknown" style="background: #d0d0d0" title="edge-x → dallas: unknown">?</td>`,
		`<tr class="workload" data-workload="shop/web">`,
		`0.32 ms`,
		`NingReschedule`,
		`<polygon class="series" data-site="dallas"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, site := range []string{"austin", "dallas", "edge-x", "paris", "toronto"} {
		if !strings.Contains(body, `<tr class="site" data-site="`+site+`">`) {
			t.Errorf("site %s missing from the sites table", site)
		}
	}
	// 5 sites: a 5 x 5 heatmap.
	if n := strings.Count(body, `<td class="rtt`); n != 25 {
		t.Errorf("heatmap has %d cells, want 25", n)
	}
	// The lowest RTT between two sites is green, the highest red.
	if !strings.Contains(body, `style="background: `+heatColour(8, 8, 95)+`" title="dallas → austin`) ||
		heatColour(8, 8, 95) != "#85e085" || heatColour(95, 8, 95) != "#e08585" {
		t.Errorf("heat colours: low %s, high %s", heatColour(8, 8, 95), heatColour(95, 8, 95))
	}
}

func TestFragmentIsOnlyTheContent(t *testing.T) {
	_, body := serve(t, fixture(t), http.MethodGet, "/?fragment=1")
	if strings.Contains(body, "<html") || strings.Contains(body, "<script") {
		t.Errorf("the fragment holds the whole page")
	}
	if !strings.Contains(body, `<table id="heatmap"`) {
		t.Errorf("the fragment lacks the heatmap")
	}
}

func TestPageEscapesNames(t *testing.T) {
	s := fixture(t)
	evil := `<script>alert(1)</script>`
	s.Sites[0].Name = evil
	s.Decisions[0].Message = `"><img src=x onerror=alert(1)>`
	_, body := serve(t, s, http.MethodGet, "/")
	if strings.Contains(body, evil) || strings.Contains(body, "<img src=x") {
		t.Errorf("a site name or message reached the page unescaped")
	}
	if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("the escaped site name is missing")
	}
}

func TestPageWithoutData(t *testing.T) {
	res, body := serve(t, Snapshot{}, http.MethodGet, "/")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / on an empty snapshot: %d", res.StatusCode)
	}
	for _, want := range []string{"not synced", "No sites", "No RTT data", "Collecting samples (0 so far)", "No pod with schedulerName", "No decisions yet"} {
		if !strings.Contains(body, want) {
			t.Errorf("the empty page lacks %q", want)
		}
	}
}

func TestSnapshotJSON(t *testing.T) {
	res, body := serve(t, fixture(t), http.MethodGet, "/api/snapshot")
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/snapshot: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	var got Snapshot
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Sites) != 5 || got.Busiest != "dallas" || len(got.Workloads) != 2 || len(got.History) != 12 {
		t.Errorf("decoded snapshot: %d sites, busiest %q, %d workloads, %d samples", len(got.Sites), got.Busiest, len(got.Workloads), len(got.History))
	}
	// Unknown RTTs are null, not 0 (edge-x is index 2, dallas 1).
	if got.RTTMs[2][1] != nil || got.RTTMs[1][2] != nil || got.RTTMs[1][4] == nil || *got.RTTMs[1][4] != 34 {
		t.Errorf("RTT row dallas: %v", got.RTTMs[1])
	}
	if !regexp.MustCompile(`"rttMs": \[\s*\[\s*0,\s*8,\s*null`).MatchString(body) {
		t.Errorf("want unknown as null in the JSON matrix: %.300s", body[strings.Index(body, `"rttMs"`):])
	}

	_, body = serve(t, fixture(t), http.MethodGet, "/api/snapshot?workload=shop/web")
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Workloads) != 1 || got.Workloads[0].WeightedRTTMs == nil || *got.Workloads[0].WeightedRTTMs != ptr.Deref(fixture(t).Workloads[1].WeightedRTTMs, -1) {
		t.Errorf("?workload=shop/web: %+v", got.Workloads)
	}
}

func TestHTTPErrors(t *testing.T) {
	for _, c := range []struct {
		method, target string
		code           int
		body           string
	}{
		{http.MethodGet, "/api/snapshot?workload=nope", http.StatusBadRequest, "want namespace/name"},
		{http.MethodGet, "/api/snapshot?workload=a/b", http.StatusBadRequest, "a/b not found"},
		{http.MethodPost, "/", http.StatusMethodNotAllowed, ""},
		{http.MethodPost, "/api/snapshot", http.StatusMethodNotAllowed, ""},
		{http.MethodGet, "/nope", http.StatusNotFound, ""},
		{http.MethodGet, "/static/nope.js", http.StatusNotFound, ""},
	} {
		res, body := serve(t, fixture(t), c.method, c.target)
		if res.StatusCode != c.code || !strings.Contains(body, c.body) {
			t.Errorf("%s %s: %d %q, want %d with %q", c.method, c.target, res.StatusCode, body, c.code, c.body)
		}
	}
	res, body := serve(t, fixture(t), http.MethodGet, "/static/dashboard.js")
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `fetch("?fragment=1"`) {
		t.Errorf("GET /static/dashboard.js: %d", res.StatusCode)
	}
}

// explaining is a fixed snapshot whose Explain echoes its arguments, with a
// name that would be markup if it were not escaped.
type explaining struct{ fixed }

func (explaining) Explain(_ context.Context, kind, ns, name string) (string, error) {
	if name == "gone" {
		return "", errors.New(`deployment shop/gone not found`)
	}
	return fmt.Sprintf("explain %s %s/%s\n<b>site</b> dallas: allowed", kind, ns, name), nil
}

func TestExplainPage(t *testing.T) {
	s := fixture(t)
	srv := httptest.NewServer(Handler(explaining{fixed(s)}))
	defer srv.Close()
	plain := httptest.NewServer(Handler(fixed(s)))
	defer plain.Close()
	get := func(base, path string) (int, string) {
		t.Helper()
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, string(b)
	}
	for _, tt := range []struct {
		base, path string
		status     int
		want       string
	}{
		{srv.URL, "/explain/deployment/shop/web", 200, "<pre id=\"explain-text\">explain deployment shop/web\n&lt;b&gt;site&lt;/b&gt; dallas: allowed</pre>"},
		{srv.URL, "/explain/pod/lab/solo", 200, "explain pod lab/solo"},
		{srv.URL, "/explain/deployment/shop/gone", 500, `<p class="bad" id="explain-error">deployment shop/gone not found</p>`},
		{srv.URL, "/explain/replicaset/shop/web", 400, `kind "replicaset": want deployment or pod`},
		{plain.URL, "/explain/deployment/shop/web", 404, "no explanations here"},
		// The workload table links to the pages only when there are some.
		{srv.URL, "/", 200, `<a href="explain/deployment/shop/web"`},
		{srv.URL, "/", 200, `<a href="explain/pod/lab/solo"`},
	} {
		status, body := get(tt.base, tt.path)
		if status != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s: %d, want %d with %q:\n%.1500s", tt.path, status, tt.status, tt.want, body)
		}
	}
	if _, body := get(plain.URL, "/"); strings.Contains(body, `href="explain/`) {
		t.Error("a dashboard without explanations links to them")
	}
}
