package dashboard

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"time"
)

//go:embed page.html static
var assets embed.FS

// Source gives the snapshot to serve; *Collector is one.
type Source interface {
	Snapshot() Snapshot
}

// Explainer says why a workload's pods sit where they do (ning explain's
// table): a Source that is one gets a page per workload. The caller wires
// internal/explain in (it builds on this package, so this one cannot call it).
type Explainer interface {
	// Explain explains the Deployment (kind "deployment") or pod ("pod")
	// namespace/name.
	Explain(ctx context.Context, kind, namespace, name string) (string, error)
}

// RefreshInterval is how often the page fetches a fresh rendering.
const RefreshInterval = 2 * time.Second

// Handler serves the dashboard:
//
//	GET /                  the page (?fragment=1: only its content, which the
//	                       page's script fetches every RefreshInterval)
//	GET /api/snapshot      the snapshot as JSON (?workload=namespace/name)
//	GET /explain/{kind}/{namespace}/{name}
//	                       a workload's page: ning explain's table for the
//	                       Deployment or pod (only when src is an Explainer)
//	GET /static/...        the page's script and style sheet
//
// Mount it at the root of a mux, beside /healthz and /metrics.
func Handler(src Source) http.Handler {
	tmpl := template.Must(template.New("").ParseFS(assets, "page.html"))
	mux := http.NewServeMux()
	explainer, explains := src.(Explainer)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		p := newPage(src.Snapshot())
		p.Explains = explains
		var buf bytes.Buffer
		var err error
		if r.URL.Query().Get("fragment") == "1" {
			err = tmpl.ExecuteTemplate(&buf, "content", p)
		} else {
			err = tmpl.ExecuteTemplate(&buf, "page", struct {
				Page      page
				RefreshMs int64
			}{p, RefreshInterval.Milliseconds()})
		}
		if err != nil {
			http.Error(w, fmt.Sprintf("rendering the page: %v", err), http.StatusInternalServerError)
			return
		}
		headers(w, "text/html; charset=utf-8")
		_, _ = w.Write(buf.Bytes())
	})
	mux.HandleFunc("GET /api/snapshot", func(w http.ResponseWriter, r *http.Request) {
		s, err := src.Snapshot().Select(r.URL.Query().Get("workload"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			http.Error(w, fmt.Sprintf("encoding the snapshot: %v", err), http.StatusInternalServerError)
			return
		}
		headers(w, "application/json")
		_, _ = w.Write(append(b, '\n'))
	})
	mux.HandleFunc("GET /explain/{kind}/{namespace}/{name}", func(w http.ResponseWriter, r *http.Request) {
		kind, ns, name := r.PathValue("kind"), r.PathValue("namespace"), r.PathValue("name")
		if !explains {
			http.Error(w, "no explanations here: this dashboard has no access to ning explain", http.StatusNotFound)
			return
		}
		if kind != "deployment" && kind != "pod" {
			http.Error(w, fmt.Sprintf("kind %q: want deployment or pod", kind), http.StatusBadRequest)
			return
		}
		text, err := explainer.Explain(r.Context(), kind, ns, name)
		status := http.StatusOK
		if err != nil {
			status = http.StatusInternalServerError
		}
		var buf bytes.Buffer
		if terr := tmpl.ExecuteTemplate(&buf, "explain", struct {
			Kind, Key, Text, Err string
		}{kind, ns + "/" + name, text, errText(err)}); terr != nil {
			http.Error(w, fmt.Sprintf("rendering the page: %v", terr), http.StatusInternalServerError)
			return
		}
		headers(w, "text/html; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write(buf.Bytes())
	})
	mux.Handle("GET /static/", http.FileServerFS(assets))
	return mux
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func headers(w http.ResponseWriter, contentType string) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// Scripts only from this server; inline style attributes colour the heatmap.
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
}
