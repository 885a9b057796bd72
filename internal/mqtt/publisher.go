package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
)

// PublisherOptions tunes a Publisher beyond the connection Config.
type PublisherOptions struct {
	// QueueSize bounds the reports kept while the broker is unreachable;
	// zero means DefaultQueueSize.
	QueueSize int
	// PublishTimeout bounds the wait for one PUBACK; zero means 10 s.
	PublishTimeout time.Duration
}

// Publisher publishes reports with QoS 1 and the retain flag. Reports go
// through a bounded in-memory queue drained in order by one goroutine: a
// report leaves the queue only when the broker has acknowledged it, so a
// broker restart loses nothing while fewer than QueueSize reports wait.
// Delivery is at least once: a report whose PUBACK was lost is sent again.
type Publisher struct {
	cm      *autopaho.ConnectionManager
	q       *queue
	opts    PublisherOptions
	log     *slog.Logger
	done    chan struct{}
	metrics publisherMetrics
	conn    *connState
}

type publisherMetrics struct {
	published prometheus.Counter
	dropped   prometheus.Counter
	errors    prometheus.Counter
	queued    prometheus.GaugeFunc
	connected prometheus.Gauge
}

// NewPublisher connects to the broker in the background and starts draining
// the queue. It stops when ctx is cancelled; call Close to flush first.
func NewPublisher(ctx context.Context, cfg Config, opts PublisherOptions, reg prometheus.Registerer, log *slog.Logger) (*Publisher, error) {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 10 * time.Second
	}
	cc, err := cfg.autopaho()
	if err != nil {
		return nil, err
	}
	p := &Publisher{q: newQueue(opts.QueueSize), opts: opts, log: log, done: make(chan struct{}),
		conn: &connState{log: log, broker: cfg.withDefaults().BrokerURL}}
	p.metrics = publisherMetrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "ning_mqtt_published_total", Help: "Reports acknowledged by the broker."}),
		dropped:   prometheus.NewCounter(prometheus.CounterOpts{Name: "ning_mqtt_dropped_total", Help: "Reports dropped because the publish queue was full (oldest first)."}),
		errors:    prometheus.NewCounter(prometheus.CounterOpts{Name: "ning_mqtt_publish_errors_total", Help: "Publish attempts that failed and will be retried."}),
		queued: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ning_mqtt_queue_length", Help: "Reports waiting to be published."},
			func() float64 { return float64(p.q.len()) }),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ning_mqtt_connected", Help: "1 while connected to the broker."}),
	}
	for _, c := range []prometheus.Collector{p.metrics.published, p.metrics.dropped, p.metrics.errors, p.metrics.queued, p.metrics.connected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering publisher metrics: %w", err)
		}
	}
	cc.OnConnectionUp = func(*autopaho.ConnectionManager, *paho.Connack) {
		p.metrics.connected.Set(1)
		p.conn.connected()
		log.Info("connected to MQTT broker", "broker", cfg.withDefaults().BrokerURL)
	}
	cc.OnConnectionDown = func() bool {
		p.metrics.connected.Set(0)
		log.Warn("lost MQTT broker connection; queueing reports", "queued", p.q.len())
		return true
	}
	cc.OnConnectError = p.conn.failed
	cc.CleanStartOnInitialConnection = true
	cm, err := autopaho.NewConnection(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("starting MQTT connection: %w", err)
	}
	p.cm = cm
	go p.drain(ctx)
	return p, nil
}

// PublishLatency queues a LatencyReport on ning/v1/latency/<source site>.
func (p *Publisher) PublishLatency(r *ningv1.LatencyReport) error {
	topic, err := LatencyTopic(r.GetSourceSite())
	if err != nil {
		return err
	}
	b, err := proto.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding latency report: %w", err)
	}
	p.enqueue(topic, b)
	return nil
}

// PublishTraffic queues a TrafficReport on ning/v1/traffic.
func (p *Publisher) PublishTraffic(r *ningv1.TrafficReport) error {
	b, err := proto.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding traffic report: %w", err)
	}
	p.enqueue(TopicTraffic, b)
	return nil
}

func (p *Publisher) enqueue(topic string, payload []byte) {
	if p.q.push(topic, payload) {
		p.metrics.dropped.Inc()
	}
}

// Queued returns how many reports wait to be published.
func (p *Publisher) Queued() int { return p.q.len() }

func (p *Publisher) drain(ctx context.Context) {
	defer close(p.done)
	retry := 50 * time.Millisecond
	for {
		m, err := p.q.peek(ctx)
		if err != nil {
			return
		}
		if err := p.cm.AwaitConnection(ctx); err != nil {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, p.opts.PublishTimeout)
		_, err = p.cm.Publish(pctx, &paho.Publish{QoS: 1, Retain: true, Topic: m.topic, Payload: m.payload})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.metrics.errors.Inc()
			p.log.Debug("publish failed; will retry", "topic", m.topic, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
			continue
		}
		p.q.remove(m.seq)
		p.metrics.published.Inc()
	}
}

// Flush waits until every queued report was acknowledged, or ctx ends.
func (p *Publisher) Flush(ctx context.Context) error {
	select {
	case <-p.q.emptied():
		return nil
	case <-p.done:
		if p.q.len() == 0 {
			return nil
		}
		return errors.New("publisher stopped with reports still queued")
	case <-ctx.Done():
		if cerr := p.conn.LastError(); cerr != nil {
			return fmt.Errorf("flushing %d queued reports: %w; not connected: %w", p.q.len(), ctx.Err(), cerr)
		}
		return fmt.Errorf("flushing %d queued reports: %w", p.q.len(), ctx.Err())
	}
}

// LastError is the error of the last failed connection attempt (in words:
// refused credentials say so), nil while connected.
func (p *Publisher) LastError() error { return p.conn.LastError() }

// Close flushes (bounded by ctx) and disconnects.
func (p *Publisher) Close(ctx context.Context) error {
	return errors.Join(p.Flush(ctx), p.disconnect(ctx))
}

// Discard disconnects without flushing and returns how many queued reports
// it dropped: for a publisher whose readers stop with it (the demo's, whose
// broker and store end on the same Ctrl-C), where a report still in flight
// has nobody left to read it.
func (p *Publisher) Discard(ctx context.Context) (dropped int, err error) {
	return p.q.len(), p.disconnect(ctx)
}

func (p *Publisher) disconnect(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	err := p.cm.Disconnect(dctx)
	if errors.Is(err, context.Canceled) || errors.Is(err, autopaho.ConnectionDownError) {
		return nil
	}
	return err
}
