// Package brokertest starts ning's embedded MQTT broker for a test.
package brokertest

import (
	"log/slog"
	"testing"

	"github.com/ning-edge/ning/internal/broker"
)

// Start starts a broker with cfg (Listen "127.0.0.1:0" picks a free port;
// Addr says which) and closes it when the test ends.
func Start(t testing.TB, cfg broker.Config, log *slog.Logger) *broker.Broker {
	t.Helper()
	b, err := broker.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}
