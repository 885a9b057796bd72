package mqtt

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/eclipse/paho.golang/autopaho"
)

// CONNACK reason codes a person must act on: MQTT 5 (and the MQTT 3.1.1
// return codes brokers such as Mosquitto send to older clients).
const (
	reasonBadCredentials    = 0x86 // MQTT 5 Bad User Name or Password
	reasonNotAuthorized     = 0x87 // MQTT 5 Not authorized
	reasonV3BadCredentials  = 0x04
	reasonV3NotAuthorized   = 0x05
	reasonClientIDNotValid  = 0x85
	reasonBadAuthentication = 0x8C
)

// ExplainConnectError says in words why a connection attempt failed. A broker
// that refuses the credentials gets a message naming them, not just a number.
func ExplainConnectError(err error) error {
	var ce *autopaho.ConnackError
	if !errors.As(err, &ce) {
		return err
	}
	what := ""
	switch ce.ReasonCode {
	case reasonBadCredentials, reasonV3BadCredentials:
		what = "the broker refused the user name or password (bad user name or password): check --mqtt-username and --mqtt-password-file"
	case reasonNotAuthorized, reasonV3NotAuthorized:
		// Mosquitto 2 answers a wrong user name or password (and a missing
		// one when anonymous clients are refused) with this code, not 0x86.
		what = "the broker refused the connection as not authorised (Mosquitto's answer to a wrong or missing user name or password): check --mqtt-username and --mqtt-password-file, then the broker's ACL"
	case reasonBadAuthentication:
		what = "the broker refused the authentication method"
	case reasonClientIDNotValid:
		what = "the broker refused the client ID"
	default:
		what = "the broker refused the connection"
	}
	if ce.Reason != "" {
		what += " (" + ce.Reason + ")"
	}
	return fmt.Errorf("%s (MQTT reason code %d): %w", what, ce.ReasonCode, err)
}

// connState remembers the last connection error, so a failure to deliver can
// say why, and logs each new kind of error once at warning level (repeats of
// the same error go to debug, so a long outage does not flood the log).
type connState struct {
	log    *slog.Logger
	broker string

	mu      sync.Mutex
	lastErr error
}

func (c *connState) failed(err error) {
	err = ExplainConnectError(err)
	c.mu.Lock()
	repeat := c.lastErr != nil && c.lastErr.Error() == err.Error()
	c.lastErr = err
	c.mu.Unlock()
	if repeat {
		c.log.Debug("MQTT connection attempt failed", "broker", c.broker, "err", err)
		return
	}
	c.log.Warn("MQTT connection attempt failed; retrying with backoff", "broker", c.broker, "err", err)
}

func (c *connState) connected() {
	c.mu.Lock()
	c.lastErr = nil
	c.mu.Unlock()
}

// LastError is the error of the last failed connection attempt, nil once
// connected.
func (c *connState) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}
