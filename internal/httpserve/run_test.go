package httpserve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"testing"
)

func TestRunWith(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		run  func(ctx context.Context) error
		want error
	}{
		{"run fails: the server stops, run's error is returned", func(context.Context) error { return boom }, boom},
		{"run ends: the server stops", func(context.Context) error { return nil }, nil},
		{"ctx ends: both stop", func(ctx context.Context) error { <-ctx.Done(); return nil }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			run := func(ctx context.Context) error {
				// The server is up while run runs.
				resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
				if err != nil {
					return err
				}
				_ = resp.Body.Close()
				if tt.name == "ctx ends: both stop" {
					cancel()
				}
				return tt.run(ctx)
			}
			err = RunWith(ctx, "test", ln, OpsMux(nil, nil), Options{}, slog.New(slog.DiscardHandler), run)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("RunWith = %v, want %v", err, tt.want)
			}
			if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
				t.Error("the server still accepts connections")
			}
		})
	}
	t.Run("server fails: run is cancelled", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_ = ln.Close() // Serve fails at once
		err = RunWith(t.Context(), "test", ln, http.NotFoundHandler(), Options{}, slog.New(slog.DiscardHandler), func(ctx context.Context) error {
			<-ctx.Done()
			return nil
		})
		if err == nil {
			t.Fatal("RunWith = nil, want the server's error")
		}
	})
}
