package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
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
	// MaxPacketSize asks the broker never to send a packet larger than this
	// (MQTT 5 Maximum Packet Size; the broker drops such a message for this
	// client). Zero means DefaultMaxPacketSize.
	MaxPacketSize uint32
	// ReceiveMaximum bounds the QoS 1 messages the broker sends before this
	// subscriber acknowledged them, and the messages (of any QoS) the client
	// buffers ahead of the handler. Zero means DefaultReceiveMaximum.
	ReceiveMaximum uint16
}

// Subscriber bounds.
const (
	// DefaultMaxPacketSize is above the sources' 1 MiB payload limit, so an
	// oversized report still arrives and is counted as too_large, and equal to
	// the embedded broker's limit.
	DefaultMaxPacketSize = 2 << 20
	// DefaultReceiveMaximum is mochi-mqtt's in-flight limit per client. A
	// smaller one would bound the client's buffer further, but then a broker
	// holds messages back whenever it is reached, and mochi v2.7.9 deletes
	// such a message before it is acknowledged: a connection lost at that
	// moment loses it (TestSubscriberBrokerRestart lost one in five runs with
	// 16). The handler only decodes and validates, so the buffer stays short.
	DefaultReceiveMaximum = 8192
)

// Subscriber subscribes on every (re)connection and passes each message on.
type Subscriber struct {
	cm       *autopaho.ConnectionManager
	received prometheus.Counter
	ready    chan struct{}
	conn     *connState
}

// NewSubscriber connects in the background; it stops when ctx is cancelled.
func NewSubscriber(ctx context.Context, cfg Config, opts SubscriberOptions, h Handler, reg prometheus.Registerer, log *slog.Logger) (*Subscriber, error) {
	if len(opts.Topics) == 0 {
		opts.Topics = []string{TopicLatencyAll, TopicTraffic}
	}
	if opts.SessionExpiry <= 0 {
		opts.SessionExpiry = 10 * time.Minute
	}
	if opts.MaxPacketSize == 0 {
		opts.MaxPacketSize = DefaultMaxPacketSize
	}
	if opts.ReceiveMaximum == 0 {
		opts.ReceiveMaximum = DefaultReceiveMaximum
	}
	cc, err := cfg.autopaho()
	if err != nil {
		return nil, err
	}
	s := &Subscriber{
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "ning_mqtt_received_total", Help: "MQTT messages received."}),
		ready:    make(chan struct{}),
		conn:     &connState{log: log, broker: cfg.withDefaults().BrokerURL},
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
	base := cc.ConnectPacketBuilder
	cc.ConnectPacketBuilder = func(cp *paho.Connect, u *url.URL) (*paho.Connect, error) {
		if base != nil {
			var err error
			if cp, err = base(cp, u); err != nil {
				return nil, err
			}
		}
		if cp.Properties == nil {
			cp.Properties = &paho.ConnectProperties{}
		}
		maxPacket, receiveMax := opts.MaxPacketSize, opts.ReceiveMaximum
		cp.Properties.MaximumPacketSize, cp.Properties.ReceiveMaximum = &maxPacket, &receiveMax
		return cp, nil
	}
	cc.OnConnectionUp = func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
		s.conn.connected()
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
	cc.OnConnectError = s.conn.failed
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

// LastError is the error of the last failed connection attempt (in words:
// refused credentials say so), nil while connected.
func (s *Subscriber) LastError() error { return s.conn.LastError() }

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
