package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/mqtt"
)

// TestBrokerDataDirFlag: `ning broker --data-dir DIR` keeps retained reports
// across a restart of the command; without it they are gone. A report is
// published retained, the broker stopped and started again on the same port,
// and a new subscriber asks for the retained reports.
func TestBrokerDataDirFlag(t *testing.T) {
	for _, tt := range []struct {
		name         string
		dataDir      bool
		wantRetained bool
	}{
		{"with --data-dir", true, true},
		{"memory only", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := freeAddr(t)
			args := []string{"--listen", addr, "--allow-anonymous", "--log-level", "error"}
			dir := filepath.Join(t.TempDir(), "state")
			if tt.dataDir {
				args = append(args, "--data-dir", dir)
			}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			cfg := mqtt.Config{BrokerURL: "mqtt://" + addr, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}

			stop := startBrokerCommand(t, args)
			pub, err := mqtt.NewPublisher(t.Context(), cfg, mqtt.PublisherOptions{}, prometheus.NewRegistry(), log)
			if err != nil {
				t.Fatal(err)
			}
			want := &ningv1.LatencyReport{SourceSite: "kept", SourceNode: "n1"}
			if err := pub.PublishLatency(want); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := pub.Close(ctx); err != nil {
				t.Fatal(err)
			}
			stop()
			if _, err := os.Stat(filepath.Join(dir, "broker.db")); (err == nil) != tt.dataDir {
				t.Fatalf("broker.db in the data directory: %v (data dir given: %v)", err, tt.dataDir)
			}

			stop = startBrokerCommand(t, args)
			defer stop()
			got := make(chan []byte, 1)
			sub, err := mqtt.NewSubscriber(ctx, cfg, mqtt.SubscriberOptions{}, func(topic string, payload []byte) {
				if topic == mqtt.TopicLatencyPrefix+"kept" {
					select {
					case got <- bytes.Clone(payload):
					default:
					}
				}
			}, prometheus.NewRegistry(), log)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = sub.Close(context.WithoutCancel(ctx)) }()
			select {
			case <-sub.Ready():
			case <-ctx.Done():
				t.Fatalf("subscriber never subscribed: %v", sub.LastError())
			}
			select {
			case payload := <-got:
				if !tt.wantRetained {
					t.Fatal("a retained report survived a restart without --data-dir")
				}
				var r ningv1.LatencyReport
				if err := proto.Unmarshal(payload, &r); err != nil {
					t.Fatal(err)
				}
				if r.GetSourceSite() != "kept" || r.GetSourceNode() != "n1" {
					t.Fatalf("retained report %v, want the one published", &r)
				}
			case <-time.After(2 * time.Second):
				if tt.wantRetained {
					t.Fatal("the retained report did not survive the restart with --data-dir")
				}
			}
		})
	}
}

// startBrokerCommand runs `ning broker args...` until the returned function
// is called (it waits for the command to end and checks its error).
func startBrokerCommand(t *testing.T, args []string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cmd := newBrokerCommand()
	cmd.SetArgs(args)
	var stderr bytes.Buffer
	cmd.SetErr(&stderr)
	cmd.SetOut(io.Discard)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	stopped := false
	return func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("ning broker %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("ning broker did not stop")
		}
	}
}
