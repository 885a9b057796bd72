package extender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
)

// DefaultMaxBodyBytes is the default request body limit: enough for the pod
// and a few thousand node names, or several hundred full Node objects.
const DefaultMaxBodyBytes = 8 << 20

// verbPrioritize is the extender API's verb (kube-scheduler's prioritizeVerb).
const verbPrioritize = "prioritize" //nolint:misspell // the API's spelling

// HandlerOptions shape the HTTP handler.
type HandlerOptions struct {
	// MaxBodyBytes limits a request body; larger ones get 413. 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Ready reports whether the informers have synced; /healthz is 503 until then.
	Ready func() bool
}

// Handler serves POST /filter, POST /prioritize, GET /healthz and GET /metrics.
func (x *Extender) Handler(o HandlerOptions) http.Handler {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	mux := http.NewServeMux()
	mux.Handle("POST /filter", x.verb("filter", o.MaxBodyBytes, func(ctx context.Context, a *extenderv1.ExtenderArgs) (any, error) {
		return x.Filter(ctx, a)
	}))
	mux.Handle("POST /"+verbPrioritize, x.verb(verbPrioritize, o.MaxBodyBytes, func(ctx context.Context, a *extenderv1.ExtenderArgs) (any, error) {
		return x.Prioritize(ctx, a) //nolint:misspell // the API's verb
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if o.Ready != nil && !o.Ready() {
			http.Error(w, "informers not synced", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	if o.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	}
	return x.instrument(mux)
}

// verb decodes ExtenderArgs, runs f and writes its result as JSON.
func (x *Extender) verb(name string, limit int64, f func(context.Context, *extenderv1.ExtenderArgs) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		args, err := DecodeArgs(http.MaxBytesReader(w, r.Body, limit))
		if err == nil {
			var out any
			out, err = f(r.Context(), args)
			if err == nil {
				x.writeJSON(w, r, name, out)
				return
			}
		}
		var tooLarge *http.MaxBytesError
		switch re, ok := errRequest(err); {
		case errors.As(err, &tooLarge):
			x.metrics.Rejected.WithLabelValues("too_large").Inc()
			http.Error(w, fmt.Sprintf("request body over the %d-byte limit", tooLarge.Limit), http.StatusRequestEntityTooLarge)
		case ok:
			x.metrics.Rejected.WithLabelValues(re.Reason).Inc()
			http.Error(w, name+": "+re.Msg, http.StatusBadRequest)
		default:
			x.metrics.Rejected.WithLabelValues("malformed").Inc()
			http.Error(w, name+": "+err.Error(), http.StatusBadRequest)
		}
	})
}

// writeJSON writes out as JSON with a Content-Length. kube-scheduler's
// extender client decodes one JSON value and closes the body without reading
// on to its end; a chunked response (anything over net/http's 2 kB buffer, so
// every answer over a few hundred node names) then still has its last chunk
// unread, and Go's transport closes the connection instead of reusing it: one
// new TCP connection per pod. With a Content-Length the client sees the end
// of the body with the last byte it reads, and keeps the connection alive.
func (x *Extender) writeJSON(w http.ResponseWriter, r *http.Request, verb string, out any) {
	b, err := json.Marshal(out)
	if err != nil {
		// Only a bug can get here: the results are plain structs.
		x.log.ErrorContext(r.Context(), "encoding the response", "verb", verb, "err", err)
		http.Error(w, "encoding the response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if _, err := w.Write(b); err != nil {
		x.log.DebugContext(r.Context(), "writing the response", "verb", verb, "err", err)
	}
}

// DecodeArgs reads one ExtenderArgs JSON document (as kube-scheduler sends
// it) and nothing after it. A decoding error is a *RequestError, except a
// body over the limit, which is the reader's *http.MaxBytesError.
func DecodeArgs(r io.Reader) (*extenderv1.ExtenderArgs, error) {
	dec := json.NewDecoder(r)
	var args extenderv1.ExtenderArgs
	if err := dec.Decode(&args); err != nil {
		return nil, decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, decodeError(err)
		}
		return nil, badRequest("malformed_json", "malformed JSON: data after the ExtenderArgs object")
	}
	return &args, nil
}

func decodeError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return err
	}
	if errors.Is(err, io.EOF) {
		return badRequest("malformed_json", "empty request body: want ExtenderArgs JSON")
	}
	return badRequest("malformed_json", "malformed ExtenderArgs JSON: %v", err)
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// instrument counts and times every request, and turns a panic into a 500
// (a bug: the fuzz tests look for them) instead of a dropped connection.
func (x *Extender) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		verb := "other"
		switch r.URL.Path {
		case "/filter", "/" + verbPrioritize, "/healthz", "/metrics":
			verb = r.URL.Path[1:]
		}
		defer func() {
			if p := recover(); p != nil {
				x.log.ErrorContext(r.Context(), "extender handler panicked", "verb", verb, "panic", p)
				x.metrics.Rejected.WithLabelValues("internal").Inc()
				if sw.code == 0 {
					http.Error(sw, "internal error", http.StatusInternalServerError)
				}
			}
			if sw.code == 0 {
				sw.code = http.StatusOK
			}
			code := strconv.Itoa(sw.code)
			x.metrics.Requests.WithLabelValues(verb, code).Inc()
			x.metrics.Duration.WithLabelValues(verb, code).Observe(time.Since(start).Seconds())
		}()
		if verb == "other" {
			x.metrics.Rejected.WithLabelValues("unknown_path").Inc()
		}
		next.ServeHTTP(sw, r)
		if sw.code == http.StatusMethodNotAllowed {
			x.metrics.Rejected.WithLabelValues("method_not_allowed").Inc()
		}
	})
}
