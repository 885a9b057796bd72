package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/logging"
)

// Reasons the broker refuses a client or a message: the values of the reason
// label of ning_broker_refused_total.
const (
	RefusedCredentials     = "bad_credentials"
	RefusedIdentity        = "bad_identity"
	RefusedClientIDTaken   = "client_id_taken"
	RefusedPublish         = "publish_denied"
	RefusedSubscribe       = "subscribe_denied"
	RefusedRetainedCount   = "retained_count"
	RefusedRetainedBytes   = "retained_bytes"
	RefusedSlowSubscriber  = "slow_subscriber"
	RefusedWriteTimeout    = "write_timeout"
	RefusedConnectTimeout  = "connect_timeout"
	RefusedPacketTooLarge  = "packet_too_large"
	refusalLogInterval     = 10 * time.Second
	refusalMetricName      = "ning_broker_refused_total"
	refusalMetricHelp      = "Connections, publishes and subscriptions the broker refused, and clients it dropped, by reason."
	retainedBytesHelp      = "Bytes of retained messages (payload and topic) the broker holds."
	retainedMessagesHelp   = "Retained messages the broker holds."
	pendingBytesMetricHelp = "Bytes of messages waiting to be written to or acknowledged by subscribers, over all clients."
)

// refusals counts every refusal and logs it once per source, reason and
// refusalLogInterval.
type refusals struct {
	total    *prometheus.CounterVec
	log      *slog.Logger
	throttle *logging.Throttle
}

func newRefusals(reg prometheus.Registerer, log *slog.Logger, clk clock.PassiveClock) (*refusals, error) {
	if clk == nil {
		clk = clock.RealClock{}
	}
	r := &refusals{
		total:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: refusalMetricName, Help: refusalMetricHelp}, []string{"reason"}),
		log:      log,
		throttle: logging.NewThrottle(refusalLogInterval, clk),
	}
	if err := reg.Register(r.total); err != nil {
		return nil, fmt.Errorf("registering broker metrics: %w", err)
	}
	for _, reason := range []string{RefusedCredentials, RefusedIdentity, RefusedClientIDTaken, RefusedPublish, RefusedSubscribe,
		RefusedRetainedCount, RefusedRetainedBytes, RefusedSlowSubscriber, RefusedWriteTimeout, RefusedConnectTimeout, RefusedPacketTooLarge} {
		r.total.WithLabelValues(reason)
	}
	return r, nil
}

// refuse counts one refusal of source (an identity, or a remote host before
// there is one: hostOf) and logs it, throttled.
func (r *refusals) refuse(reason, source, detail string) {
	r.total.WithLabelValues(reason).Inc()
	if ok, suppressed := r.throttle.Allow(reason + "\x00" + source); ok {
		r.log.Warn("broker refused", "reason", reason, "source", source, "detail", detail, "suppressedSinceLast", suppressed)
	}
}

// hostOf is a remote address without its port, the source of a refusal
// before the client has an identity: each connection of one client comes
// from a new port, and its refusals are logged once per interval, not once
// per connection.
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return fmt.Errorf("registering broker metrics (one broker per registry): %w", err)
			}
			return fmt.Errorf("registering broker metrics: %w", err)
		}
	}
	return nil
}
