package netem_test

import (
	"errors"
	"math"
	"net"
	"os"
	"testing"
	"time"

	. "github.com/ning-edge/ning/internal/netem"
	"github.com/ning-edge/ning/internal/netem/netemtest"
)

func TestDecider(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		name  string
		shape Shape
	}{
		{"delay only", Shape{Delay: 20 * time.Millisecond}},
		{"jitter", Shape{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond}},
		{"loss", Shape{Delay: 5 * time.Millisecond, Loss: 0.1}},
		{"everything lost", Shape{Delay: time.Millisecond, Loss: 1}},
		{"nothing", Shape{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.shape.Validate(); err != nil {
				t.Fatal(err)
			}
			d := NewDecider(tt.shape, 7)
			const n = 100_000
			drops := 0
			var sum time.Duration
			for range n {
				rel, drop := d.Decide(now)
				if drop {
					drops++
					continue
				}
				delay := rel.Sub(now)
				if delay < tt.shape.Delay-tt.shape.Jitter || delay > tt.shape.Delay+tt.shape.Jitter {
					t.Fatalf("delay %s outside %s ± %s", delay, tt.shape.Delay, tt.shape.Jitter)
				}
				sum += delay
			}
			if loss := float64(drops) / n; math.Abs(loss-tt.shape.Loss) > 0.005 {
				t.Errorf("loss %.4f, want %.2f", loss, tt.shape.Loss)
			}
			if kept := n - drops; kept > 0 {
				if mean := sum / time.Duration(kept); (mean - tt.shape.Delay).Abs() > 50*time.Microsecond {
					t.Errorf("mean delay %s, want %s", mean, tt.shape.Delay)
				}
			}
		})
	}
}

func TestShapeValidateAndHalf(t *testing.T) {
	for _, bad := range []Shape{{Delay: -1}, {Delay: time.Millisecond, Jitter: 2 * time.Millisecond}, {Loss: 1.5}, {Loss: math.NaN()}} {
		if bad.Validate() == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
	h := Half(Shape{Delay: 40 * time.Millisecond, Jitter: 10 * time.Millisecond, Loss: 0.19})
	if h.Delay != 20*time.Millisecond || h.Jitter != 5*time.Millisecond || math.Abs(h.Loss-0.1) > 1e-9 {
		t.Errorf("Half = %+v, want 20ms ± 5ms, loss 0.1 each way", h)
	}
}

// TestDelayerRoundTrip shapes a veth pair to 20 ms and times UDP round trips
// across it from inside the namespaces. Root only.
func TestDelayerRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("delayer timing test: skipped in -short (make test-netns runs it)")
	}
	if os.Geteuid() != 0 {
		netemtest.Skip(t, "needs root: skipped")
	}
	netemtest.LockForTiming(t)
	lab, err := NewLab("ningdl")
	if err != nil {
		netemtest.Skip(t, "skipped: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
	})
	for _, n := range []string{"a", "b"} {
		if err := lab.AddNamespace(t.Context(), n); err != nil {
			t.Fatal(err)
		}
	}
	_, addrB, err := lab.Link(t.Context(), "a", "b", Shape{Delay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var srv, cli net.PacketConn
	if err := lab.Do("b", func() (err error) { srv, err = net.ListenPacket("udp4", addrB+":7"); return err }); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Close() }()
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := srv.ReadFrom(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				_, _ = srv.WriteTo(buf[:n], from)
			}
		}
	}()
	if err := lab.Do("a", func() (err error) { cli, err = net.ListenPacket("udp4", ":0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cli.Close() }()
	dst := &net.UDPAddr{IP: net.ParseIP(addrB), Port: 7}
	var sum time.Duration
	const n = 30
	buf := make([]byte, 64)
	for range n {
		start := time.Now()
		if _, err := cli.WriteTo([]byte("x"), dst); err != nil {
			t.Fatal(err)
		}
		_ = cli.SetReadDeadline(start.Add(time.Second))
		if _, _, err := cli.ReadFrom(buf); err != nil {
			t.Fatal(err)
		}
		sum += time.Since(start)
	}
	mean := sum / n
	t.Logf("configured 20 ms, measured %s (overhead %s)", mean, mean-20*time.Millisecond)
	if mean < 20*time.Millisecond || mean > 22*time.Millisecond {
		t.Errorf("mean RTT %s, want 20 ms plus at most 2 ms of overhead", mean)
	}
}
