// Command workload is the lab's HTTP workload: every request takes a fixed
// service time, at most -concurrency at once (the others queue), and the
// answer names the pod and node that served it. GET /healthz answers at once.
//
// -max-conn-age closes a client's keep-alive connection after the first
// answer past that age (Connection: close), as gRPC's MaxConnectionAge does:
// a gateway that keeps its connections to a Service's cluster IP open would
// otherwise stay with the endpoints kube-proxy picked when they opened, and
// never reach a replica that became Ready later.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	service := flag.Duration("service-time", 10*time.Millisecond, "time each request takes")
	conc := flag.Int("concurrency", 4, "requests served at once (the rest wait)")
	maxAge := flag.Duration("max-conn-age", 0, "close a keep-alive connection after its first answer past this age (0: never)")
	flag.Parse()
	if *conc < 1 || *service < 0 || *maxAge < 0 {
		fmt.Fprintln(os.Stderr, "workload: -concurrency must be at least 1, -service-time and -max-conn-age non-negative")
		os.Exit(2)
	}
	pod, node := os.Getenv("POD_NAME"), os.Getenv("NODE_NAME")
	if pod == "" {
		pod, _ = os.Hostname()
	}
	srv := newServer(*listen, config{pod: pod, node: node, service: *service, concurrency: *conc, maxConnAge: *maxAge})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		<-sigs
		// Finish the requests in flight and close idle keep-alive
		// connections, so that a moved pod fails no request.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	slog.Info("workload serving", "listen", *listen, "service_time", *service, "concurrency", *conc, "max_conn_age", *maxAge)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		slog.Error("workload", "err", err)
		os.Exit(1)
	}
	<-drained
}

type config struct {
	pod, node   string
	service     time.Duration
	concurrency int
	maxConnAge  time.Duration
}

// newServer serves the workload on listen: / takes c.service, at most
// c.concurrency at once, and answers with the pod and node; /healthz
// answers at once.
func newServer(listen string, c config) *http.Server {
	slots := make(chan struct{}, c.concurrency)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		select {
		case slots <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		time.Sleep(c.service)
		<-slots
		w.Header().Set("X-Queue-Seconds", fmt.Sprintf("%.6f", time.Since(start).Seconds()-c.service.Seconds()))
		if opened, ok := r.Context().Value(connOpened{}).(time.Time); ok && c.maxConnAge > 0 && time.Since(opened) >= c.maxConnAge {
			w.Header().Set("Connection", "close")
		}
		fmt.Fprintf(w, "pod=%s node=%s\n", c.pod, c.node)
	})
	return &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connOpened{}, time.Now())
		}}
}

// connOpened keys the time a connection was accepted in its requests'
// contexts.
type connOpened struct{}
