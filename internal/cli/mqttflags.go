package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ning-edge/ning/internal/logging"
	"github.com/ning-edge/ning/internal/mqtt"
)

// mqttFlags are the MQTT client options shared by every command that talks
// to the broker.
type mqttFlags struct {
	url, username, passwordFile, ca, cert, key, clientID string
}

func (f *mqttFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.url, "broker", mqtt.DefaultBrokerURL, "MQTT broker URL (mqtt:// or tls://host:port)")
	fs.StringVar(&f.username, "mqtt-username", "", "MQTT username")
	fs.StringVar(&f.passwordFile, "mqtt-password-file", "", "file holding the MQTT password (or env NING_MQTT_PASSWORD)")
	fs.StringVar(&f.ca, "mqtt-ca", "", "CA certificate to verify the broker (implies TLS)")
	fs.StringVar(&f.cert, "mqtt-cert", "", "client certificate for mutual TLS")
	fs.StringVar(&f.key, "mqtt-key", "", "client key for mutual TLS")
	fs.StringVar(&f.clientID, "mqtt-client-id", "", "MQTT client ID (default: generated)")
}

func (f *mqttFlags) config() (mqtt.Config, error) {
	c := mqtt.Config{BrokerURL: f.url, ClientID: f.clientID, Username: f.username,
		CAFile: f.ca, CertFile: f.cert, KeyFile: f.key}
	c.Password = os.Getenv("NING_MQTT_PASSWORD")
	if f.passwordFile != "" {
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return mqtt.Config{}, fmt.Errorf("reading MQTT password: %w", err)
		}
		c.Password = strings.TrimRight(string(b), "\r\n")
		c.PasswordFile = f.passwordFile // read again on every connect (a rotated token)
	}
	return c, nil
}

// newLogger is the command's logger at --log-level, klog included
// (logging.Setup).
func newLogger(level string) (*slog.Logger, error) {
	return logging.Setup(os.Stderr, level)
}
