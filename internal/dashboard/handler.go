package dashboard

import (
	"bytes"
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

// RefreshInterval is how often the page fetches a fresh rendering.
const RefreshInterval = 2 * time.Second

// Handler serves the dashboard:
//
//	GET /                  the page (?fragment=1: only its content, which the
//	                       page's script fetches every RefreshInterval)
//	GET /api/snapshot      the snapshot as JSON (?workload=namespace/name)
//	GET /static/...        the page's script and style sheet
//
// Mount it at the root of a mux, beside /healthz and /metrics.
func Handler(src Source) http.Handler {
	tmpl := template.Must(template.New("").ParseFS(assets, "page.html"))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		p := newPage(src.Snapshot())
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
	mux.Handle("GET /static/", http.FileServerFS(assets))
	return mux
}

func headers(w http.ResponseWriter, contentType string) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// Scripts only from this server; inline style attributes colour the heatmap.
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
}
