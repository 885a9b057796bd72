package extender

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/ning-edge/ning/internal/httpserve"
)

// RunOptions configure Serve.
type RunOptions struct {
	Config Config
	Server httpserve.Options
	// Gatherers are served on /metrics beside the extender's own registry
	// (e.g. the MQTT source's metrics).
	Gatherers []prometheus.Gatherer
}

// Serve serves the extender on ln until ctx is done: it watches nodes and
// pods through client, reads RTTs, traffic and loads from store, and answers
// kube-scheduler's /filter, /prioritize and /bind calls.
func Serve(ctx context.Context, ln net.Listener, client kubernetes.Interface, store Store, o RunOptions, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		return err
	}
	f := informers.NewSharedInformerFactory(client, 0)
	if err := f.Core().V1().Pods().Informer().SetTransform(TrimPod); err != nil {
		return fmt.Errorf("pod informer: %w", err)
	}
	x, err := New(f, store, o.Config, m, log)
	if err != nil {
		return err
	}
	events := record.NewBroadcaster(record.WithContext(ctx))
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer events.Shutdown()
	x.recorder = events.NewRecorder(scheme.Scheme, v1.EventSource{Component: "ning-extender"})
	x.client = client
	f.Start(ctx.Done())
	defer f.Shutdown()
	// Serve only once the caches hold every node and pod: until then a
	// scheduler's connection waits in the listener's backlog (bounded by its
	// httpTimeout) instead of getting "unknown node" for a node not yet seen.
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("extender informers: %s did not sync: %w", typ, context.Cause(ctx))
		}
	}
	h := x.Handler(HandlerOptions{
		Gatherer: append(prometheus.Gatherers{reg}, o.Gatherers...),
	})
	log.InfoContext(ctx, "ning extender serving", "addr", ln.Addr().String(), "tls", o.Server.CertFile != "")
	return httpserve.Serve(ctx, "extender", ln, h, o.Server, log)
}
