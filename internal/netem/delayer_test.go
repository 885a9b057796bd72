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
	"golang.org/x/sys/unix"
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

// twoSiteLab is a lab of namespaces a and b, closed when t ends (a delayer's
// failure fails t). It skips t in -short (make test-netns runs it) and
// without root or the lab's tools.
func twoSiteLab(t *testing.T, prefix, what string) *Lab {
	t.Helper()
	if testing.Short() {
		t.Skipf("%s: skipped in -short (make test-netns runs it)", what)
	}
	if os.Geteuid() != 0 {
		netemtest.Skip(t, "%s needs root: skipped", what)
	}
	netemtest.LockForTiming(t)
	lab, err := NewLab(prefix)
	if err != nil {
		netemtest.Skip(t, "%s skipped: %v", what, err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("closing the lab: %v", err)
		}
	})
	for _, n := range []string{"a", "b"} {
		if err := lab.AddNamespace(t.Context(), n); err != nil {
			t.Fatal(err)
		}
	}
	return lab
}

// TestDelayerRoundTrip shapes a veth pair to 20 ms and times UDP round trips
// across it from inside the namespaces. Root only.
func TestDelayerRoundTrip(t *testing.T) {
	lab := twoSiteLab(t, "ningdl", "delayer timing test")
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

// TestDelayerLinkDown sets a site's links down while its delayer holds
// packets: the kernel drops them, so their verdicts fail. The delayer must
// go on serving when the links come back, and Close must report nothing
// (twoSiteLab's cleanup checks).
func TestDelayerLinkDown(t *testing.T) {
	lab := twoSiteLab(t, "ningld", "delayer link-down test")
	const rtt = 400 * time.Millisecond
	_, addrB, err := lab.Link(t.Context(), "a", "b", Shape{Delay: rtt})
	if err != nil {
		t.Fatal(err)
	}
	var cli net.PacketConn
	if err := lab.Do("a", func() (err error) { cli, err = net.ListenPacket("udp4", ":0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cli.Close() }()
	dst := &net.UDPAddr{IP: net.ParseIP(addrB), Port: 9}
	// Held in a's queue for rtt/2, while a's link goes down.
	for range 20 {
		if _, err := cli.WriteTo([]byte("x"), dst); err != nil {
			t.Fatal(err)
		}
	}
	if err := lab.SetLinks(t.Context(), "a", false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(rtt) // past every held packet's release
	if err := lab.SetLinks(t.Context(), "a", true); err != nil {
		t.Fatal(err)
	}
	var srv net.PacketConn
	if err := lab.Do("b", func() (err error) { srv, err = net.ListenPacket("udp4", addrB+":9"); return err }); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Close() }()
	// The link is back, served by the same delayer: packets cross again.
	// Carrier can take a moment after "up", so send until one arrives.
	arrived := make(chan bool, 1)
	go func() {
		buf := make([]byte, 64)
		_ = srv.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := srv.ReadFrom(buf)
		arrived <- err == nil
	}()
	tick := time.NewTicker(rtt)
	defer tick.Stop()
	for crossed := false; !crossed; {
		if _, err := cli.WriteTo([]byte("y"), dst); err != nil && !errors.Is(err, unix.ENETUNREACH) {
			t.Fatal(err)
		}
		select {
		case crossed = <-arrived:
			if !crossed {
				t.Fatal("no packet crossed a's link within 10 s of it coming back up: its delayer stopped")
			}
		case <-tick.C:
		}
	}
}
