package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
)

// Handler receives one message. It runs on the client's receive goroutine, so
// it must not block for long.
type Handler func(topic string, payload []byte)

// SubscriberOptions tunes a Subscriber.
type SubscriberOptions struct {
	// Topics to subscribe to with QoS 1; empty means latency and traffic.
	Topics []string
	// SessionExpiry asks the broker to keep the session (and queue QoS 1
	// messages) this long while the subscriber is away; it needs a fixed
	// Config.ClientID. Zero means 10 minutes.
	SessionExpiry time.Duration
}

// Subscriber subscribes on every (re)connection and passes each message on.
type Subscriber struct {
	cm       *autopaho.ConnectionManager
	received prometheus.Counter
	ready    chan struct{}
}

// NewSubscriber connects in the background; it stops when ctx is cancelled.
func NewSubscriber(ctx context.Context, cfg Config, opts SubscriberOptions, h Handler, reg prometheus.Registerer, log *slog.Logger) (*Subscriber, error) {
	if len(opts.Topics) == 0 {
		opts.Topics = []string{TopicLatencyAll, TopicTraffic}
	}
	if opts.SessionExpiry <= 0 {
		opts.SessionExpiry = 10 * time.Minute
	}
	cc, err := cfg.autopaho()
	if err != nil {
		return nil, err
	}
	s := &Subscriber{
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "ning_mqtt_received_total", Help: "MQTT messages received."}),
		ready:    make(chan struct{}),
	}
	if err := reg.Register(s.received); err != nil {
		return nil, fmt.Errorf("registering subscriber metrics: %w", err)
	}
	subs := make([]paho.SubscribeOptions, 0, len(opts.Topics))
	for _, t := range opts.Topics {
		subs = append(subs, paho.SubscribeOptions{Topic: t, QoS: 1})
	}
	var readyOnce sync.Once
	if cfg.ClientID != "" {
		cc.SessionExpiryInterval = uint32(opts.SessionExpiry / time.Second)
	}
	cc.OnConnectionUp = func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
		go func() {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if _, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: subs}); err != nil {
				log.Error("MQTT subscribe failed", "topics", opts.Topics, "err", err)
				return
			}
			log.Info("subscribed", "topics", opts.Topics)
			readyOnce.Do(func() { close(s.ready) })
		}()
	}
	cc.OnConnectError = func(err error) { log.Debug("MQTT connect attempt failed", "err", err) }
	cc.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			s.received.Inc()
			h(pr.Packet.Topic, pr.Packet.Payload)
			return true, nil
		},
	}
	cm, err := autopaho.NewConnection(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("starting MQTT connection: %w", err)
	}
	s.cm = cm
	return s, nil
}

// Ready is closed after the first successful subscription.
func (s *Subscriber) Ready() <-chan struct{} { return s.ready }

// Close disconnects.
func (s *Subscriber) Close(ctx context.Context) error {
	err := s.cm.Disconnect(ctx)
	if errors.Is(err, autopaho.ConnectionDownError) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
