package extender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	v1 "k8s.io/api/core/v1"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
)

// verbPrioritize is the extender API's verb (kube-scheduler's prioritizeVerb).
const verbPrioritize = "prioritize" //nolint:misspell // the API's spelling

// HandlerOptions shape the HTTP handler.
type HandlerOptions struct {
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Ready reports whether the informers have synced; /healthz is 503 until then.
	Ready func() bool
}

// Handler serves POST /filter, POST /prioritize, POST /bind, GET /healthz and
// GET /metrics, within the Config's Limits.
func (x *Extender) Handler(o HandlerOptions) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /filter", x.verb("filter", func(ctx context.Context, a *extenderv1.ExtenderArgs) (any, error) {
		return x.Filter(ctx, a)
	}))
	mux.Handle("POST /"+verbPrioritize, x.verb(verbPrioritize, func(ctx context.Context, a *extenderv1.ExtenderArgs) (any, error) {
		return x.Prioritize(ctx, a) //nolint:misspell // the API's verb
	}))
	mux.Handle("POST /bind", x.bindHandler())
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

// verb takes an in-flight token, decodes ExtenderArgs, runs f and writes its
// result as JSON. Without a token free the request gets 429 before its body
// is read: the tokens bound the memory requests in progress hold.
func (x *Extender) verb(name string, f func(context.Context, *extenderv1.ExtenderArgs) (any, error)) http.Handler {
	lim := x.cfg.Limits
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case x.inFlight <- struct{}{}:
			defer func() { <-x.inFlight }()
		default:
			w.Header().Set("Retry-After", "1")
			x.refuse(w, r, reasonInFlight, http.StatusTooManyRequests,
				fmt.Sprintf("%s: %d requests in progress, the limit", name, lim.MaxInFlight))
			return
		}
		args, err := DecodeArgs(http.MaxBytesReader(w, r.Body, lim.MaxBodyBytes), lim.MaxNodes)
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
			x.refuse(w, r, reasonTooLarge, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over the %d-byte limit", tooLarge.Limit))
		case r.Context().Err() != nil && errors.Is(err, r.Context().Err()):
			x.refuse(w, r, reasonCancelled, http.StatusServiceUnavailable, name+": "+err.Error())
		case ok:
			code := re.Code
			if code == 0 {
				code = http.StatusBadRequest
			}
			x.refuse(w, r, re.Reason, code, name+": "+re.Msg)
		default:
			x.refuse(w, r, "malformed", http.StatusBadRequest, name+": "+err.Error())
		}
	})
}

// bindHandler takes a bind token, decodes ExtenderBindingArgs, runs Bind and
// answers an ExtenderBindingResult, its Error set on a refusal: with code 200
// when kube-scheduler could have sent the request (it reads the body of no
// other code), else with the refusal's code.
func (x *Extender) bindHandler() http.Handler {
	lim := x.cfg.Limits
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(reason string, code int, msg string) {
			x.counted(r, reason, msg)
			x.writeJSONCode(w, r, "bind", code, &extenderv1.ExtenderBindingResult{Error: msg})
		}
		select {
		case x.binding <- struct{}{}:
			defer func() { <-x.binding }()
		default:
			w.Header().Set("Retry-After", "1")
			fail(reasonInFlight, http.StatusTooManyRequests, fmt.Sprintf("bind: %d requests in progress, the limit", lim.MaxBindsInFlight))
			return
		}
		args, err := DecodeBindingArgs(http.MaxBytesReader(w, r.Body, lim.MaxBodyBytes))
		if err == nil {
			if err = x.Bind(r.Context(), args); err == nil {
				x.writeJSON(w, r, "bind", &extenderv1.ExtenderBindingResult{})
				return
			}
		}
		var tooLarge *http.MaxBytesError
		switch re, ok := errRequest(err); {
		case errors.As(err, &tooLarge):
			fail(reasonTooLarge, http.StatusRequestEntityTooLarge, fmt.Sprintf("bind: request body over the %d-byte limit", tooLarge.Limit))
		case r.Context().Err() != nil && errors.Is(err, r.Context().Err()):
			fail(reasonCancelled, http.StatusServiceUnavailable, "bind: "+err.Error())
		case ok:
			code := re.Code
			if code == 0 {
				code = http.StatusBadRequest
			}
			fail(re.Reason, code, "bind: "+re.Msg)
		default:
			fail(reasonBindFailed, http.StatusOK, "bind: "+err.Error())
		}
	})
}

// DecodeBindingArgs reads one ExtenderBindingArgs JSON document (as
// kube-scheduler sends it) and nothing after it. A decoding error is a
// *RequestError, except a body over the limit, which is the reader's
// *http.MaxBytesError.
func DecodeBindingArgs(r io.Reader) (*extenderv1.ExtenderBindingArgs, error) {
	dec := json.NewDecoder(r)
	var args extenderv1.ExtenderBindingArgs
	if err := dec.Decode(&args); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, err
		}
		if errors.Is(err, io.EOF) {
			return nil, badRequest("malformed_json", "empty request body: want ExtenderBindingArgs JSON")
		}
		return nil, badRequest("malformed_json", "malformed ExtenderBindingArgs JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, badRequest("malformed_json", "malformed ExtenderBindingArgs JSON: %v", err)
		}
		return nil, badRequest("malformed_json", "malformed JSON: data after the ExtenderBindingArgs object")
	}
	return &args, nil
}

// refuse answers a refused request with code and msg, counts it under
// reason, and logs it once per source, reason and Limits.LogEvery.
func (x *Extender) refuse(w http.ResponseWriter, r *http.Request, reason string, code int, msg string) {
	x.counted(r, reason, msg)
	http.Error(w, msg, code)
}

// counted counts and logs a refusal whose answer is written elsewhere.
func (x *Extender) counted(r *http.Request, reason, msg string) {
	x.metrics.Rejected.WithLabelValues(reason).Inc()
	source, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		source = r.RemoteAddr
	}
	if ok, _ := x.every.Allow(source + "\x00" + reason); ok {
		x.log.WarnContext(r.Context(), "Extender request refused (logged once per source and reason per interval; every one is counted)",
			"source", source, "reason", reason, "detail", msg, "interval", x.cfg.Limits.LogEvery)
	}
}

// writeJSON writes out as JSON with a Content-Length. kube-scheduler's
// extender client decodes one JSON value and closes the body without reading
// on to its end; a chunked response (anything over net/http's 2 kB buffer, so
// every answer over a few hundred node names) then still has its last chunk
// unread, and Go's transport closes the connection instead of reusing it: one
// new TCP connection per pod. With a Content-Length the client sees the end
// of the body with the last byte it reads, and keeps the connection alive.
func (x *Extender) writeJSON(w http.ResponseWriter, r *http.Request, verb string, out any) {
	x.writeJSONCode(w, r, verb, http.StatusOK, out)
}

// writeJSONCode is writeJSON with the status code.
func (x *Extender) writeJSONCode(w http.ResponseWriter, r *http.Request, verb string, code int, out any) {
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
	w.WriteHeader(code)
	if _, err := w.Write(b); err != nil {
		x.log.DebugContext(r.Context(), "writing the response", "verb", verb, "err", err)
	}
}

// wireArgs is ExtenderArgs with the nodes left undecoded, so that their
// count is checked before each becomes a v1.Node (a few hundred bytes of
// JSON each, several kB decoded).
type wireArgs struct {
	Pod   *v1.Pod `json:"pod"`
	Nodes *struct {
		Items []json.RawMessage `json:"items"`
	} `json:"nodes,omitempty"`
	NodeNames *[]string `json:"nodenames,omitempty"`
}

// DecodeArgs reads one ExtenderArgs JSON document (as kube-scheduler sends
// it) and nothing after it, with at most maxNodes nodes. A decoding error is
// a *RequestError, except a body over the limit, which is the reader's
// *http.MaxBytesError.
func DecodeArgs(r io.Reader, maxNodes int) (*extenderv1.ExtenderArgs, error) {
	dec := json.NewDecoder(r)
	var wire wireArgs
	if err := dec.Decode(&wire); err != nil {
		return nil, decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, decodeError(err)
		}
		return nil, badRequest("malformed_json", "malformed JSON: data after the ExtenderArgs object")
	}
	args := &extenderv1.ExtenderArgs{Pod: wire.Pod, NodeNames: wire.NodeNames}
	if wire.NodeNames != nil && len(*wire.NodeNames) > maxNodes {
		return nil, tooManyNodes(len(*wire.NodeNames), maxNodes)
	}
	if wire.Nodes != nil {
		if len(wire.Nodes.Items) > maxNodes {
			return nil, tooManyNodes(len(wire.Nodes.Items), maxNodes)
		}
		args.Nodes = &v1.NodeList{Items: make([]v1.Node, len(wire.Nodes.Items))}
		for i, raw := range wire.Nodes.Items {
			if err := json.Unmarshal(raw, &args.Nodes.Items[i]); err != nil {
				return nil, badRequest("malformed_json", "malformed ExtenderArgs JSON: node %d: %v", i, err)
			}
		}
	}
	return args, nil
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
		case "/filter", "/" + verbPrioritize, "/bind", "/healthz", "/metrics":
			verb = r.URL.Path[1:]
		}
		defer func() {
			if p := recover(); p != nil {
				x.log.ErrorContext(r.Context(), "extender handler panicked", "verb", verb, "panic", p)
				x.counted(r, "internal", fmt.Sprint(p))
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
			x.counted(r, "unknown_path", r.URL.Path)
		}
		next.ServeHTTP(sw, r)
		if sw.code == http.StatusMethodNotAllowed {
			x.counted(r, "method_not_allowed", r.Method+" "+r.URL.Path)
		}
	})
}
