// Command workload is the lab's HTTP workload: every request takes a fixed
// service time, at most -concurrency at once (the others queue), and the
// answer names the pod and node that served it. GET /healthz answers at once.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
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
	flag.Parse()
	if *conc < 1 || *service < 0 {
		fmt.Fprintln(os.Stderr, "workload: -concurrency must be at least 1 and -service-time non-negative")
		os.Exit(2)
	}
	pod, node := os.Getenv("POD_NAME"), os.Getenv("NODE_NAME")
	if pod == "" {
		pod, _ = os.Hostname()
	}
	slots := make(chan struct{}, *conc)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		select {
		case slots <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		time.Sleep(*service)
		<-slots
		w.Header().Set("X-Queue-Seconds", fmt.Sprintf("%.6f", time.Since(start).Seconds()-service.Seconds()))
		fmt.Fprintf(w, "pod=%s node=%s\n", pod, node)
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
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
	slog.Info("workload serving", "listen", *listen, "service_time", *service, "concurrency", *conc)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		slog.Error("workload", "err", err)
		os.Exit(1)
	}
	<-drained
}
