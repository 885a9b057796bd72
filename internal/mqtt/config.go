// Package mqtt carries ning's reports over MQTT 5: a Publisher with a bounded
// queue that survives broker restarts, and a Subscriber that hands every
// payload to a handler. Both reconnect with exponential backoff (autopaho).
package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/ning-edge/ning/internal/mqtt/topics"
)

// DefaultBrokerURL is local on purpose: ning never defaults to a public broker.
const DefaultBrokerURL = "mqtt://127.0.0.1:1883"

// DefaultQueueSize is how many reports a Publisher keeps while the broker is
// unreachable. When it is full the oldest report is dropped and counted in
// ning_mqtt_dropped_total.
const DefaultQueueSize = 1000

// Topics (internal/mqtt/topics is their home).
const (
	// TopicLatencyPrefix is followed by the source site: ning/v1/latency/<site>.
	TopicLatencyPrefix = topics.LatencyPrefix
	// TopicLatencyAll matches every site's latency topic.
	TopicLatencyAll = topics.LatencyAll
	// TopicTraffic carries TrafficReports.
	TopicTraffic = topics.Traffic
)

// LatencyTopic returns the topic a site's LatencyReports are published on.
func LatencyTopic(site string) (string, error) { return topics.Latency(site) }

// SiteFromTopic returns the site of a latency topic, or false.
func SiteFromTopic(topic string) (string, bool) { return topics.SiteOf(topic) }

// Config is how a client reaches the broker.
type Config struct {
	// BrokerURL is mqtt://, tcp://, tls://, mqtts:// or ssl://host:port.
	// Empty means DefaultBrokerURL.
	BrokerURL string
	// ClientID identifies the client; a subscriber with a stable ID gets the
	// messages the broker kept for it while it was away.
	ClientID string
	Username string
	Password string
	// PasswordFile, when set, is read again before every connection attempt
	// (a projected ServiceAccount token the kubelet rotates); Password is
	// used when it cannot be read.
	PasswordFile string
	// CAFile verifies the broker's certificate; CertFile and KeyFile are the
	// client certificate for mutual TLS. Any of them implies TLS.
	CAFile, CertFile, KeyFile string
	// KeepAlive is the MQTT keepalive; zero means 20 s.
	KeepAlive time.Duration
	// ConnectTimeout bounds one connection attempt; zero means 10 s.
	ConnectTimeout time.Duration
	// MinBackoff and MaxBackoff bound the exponential reconnect backoff;
	// zero means 250 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
}

func (c Config) withDefaults() Config {
	if c.BrokerURL == "" {
		c.BrokerURL = DefaultBrokerURL
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 20 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff <= c.MinBackoff {
		c.MaxBackoff = max(30*time.Second, 2*c.MinBackoff)
	}
	return c
}

// TLSConfig builds the client TLS configuration, or nil when no TLS file is set.
func (c Config) TLSConfig() (*tls.Config, error) {
	if c.CAFile == "" && c.CertFile == "" && c.KeyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate found", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("client certificate and key must be given together")
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (c Config) autopaho() (autopaho.ClientConfig, error) {
	c = c.withDefaults()
	u, err := url.Parse(c.BrokerURL)
	if err != nil {
		return autopaho.ClientConfig{}, fmt.Errorf("broker URL: %w", err)
	}
	tlsCfg, err := c.TLSConfig()
	if err != nil {
		return autopaho.ClientConfig{}, err
	}
	switch u.Scheme {
	case "mqtt", "tcp":
		if tlsCfg != nil {
			u.Scheme = "tls"
		}
	case "tls", "mqtts", "ssl":
		u.Scheme = "tls"
		if tlsCfg == nil {
			tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	default:
		return autopaho.ClientConfig{}, fmt.Errorf("broker URL %q: scheme must be mqtt, tcp, tls, mqtts or ssl", c.BrokerURL)
	}
	if u.Port() == "" {
		return autopaho.ClientConfig{}, fmt.Errorf("broker URL %q: needs a port", c.BrokerURL)
	}
	cc := autopaho.ClientConfig{
		ServerUrls:     []*url.URL{u},
		TlsCfg:         tlsCfg,
		KeepAlive:      uint16(min(c.KeepAlive/time.Second, 65535)),
		ConnectTimeout: c.ConnectTimeout,
		ReconnectBackoff: autopaho.NewExponentialBackoff(
			c.MinBackoff, c.MaxBackoff, c.MinBackoff+(c.MaxBackoff-c.MinBackoff)/20+time.Millisecond, 2),
	}
	cc.ClientID = c.ClientID
	if c.Username != "" {
		cc.ConnectUsername = c.Username
		cc.ConnectPassword = []byte(c.Password)
	}
	if c.PasswordFile != "" {
		file := c.PasswordFile
		cc.ConnectPacketBuilder = func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if b, err := os.ReadFile(file); err == nil {
				cp.Password, cp.PasswordFlag = []byte(strings.TrimRight(string(b), "\r\n")), true
			}
			return cp, nil
		}
	}
	return cc, nil
}
