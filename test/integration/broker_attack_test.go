package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// brokerMemoryLimit is the chart's memory limit of the broker
// (deploy/helm/ning/values.yaml broker.resources.limits.memory, 256Mi).
const brokerMemoryLimit = 256 << 20

// brokerGoMemLimit is the chart's GOMEMLIMIT for the broker (broker.goMemLimit).
const brokerGoMemLimit = "200MiB"

// brokerProc is a `ning broker` process.
type brokerProc struct {
	cmd              *exec.Cmd
	addr, metricsURL string
	// cgroup is the memory cgroup (v1) holding the process at the chart's
	// limit, as the kubelet would; empty when not root.
	cgroup string
}

// memoryCgroupRoot is the cgroup v1 memory hierarchy (DESIGN.md: this
// machine's and CI's cgroups are v1).
const memoryCgroupRoot = "/sys/fs/cgroup/memory"

// limitMemory moves pid into a new memory cgroup limited to limit bytes
// (page cache included, as a container's limit counts it), so that a
// process over it is reclaimed from or OOM-killed as in a pod. It returns
// the cgroup's directory and a removal to call once the process is gone.
func limitMemory(pid int, limit int64) (dir string, remove func(), err error) {
	dir = filepath.Join(memoryCgroupRoot, fmt.Sprintf("ning-test-broker-%d", pid))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("creating memory cgroup: %w", err)
	}
	remove = func() { _ = os.Remove(dir) }
	for _, w := range []struct{ file, value string }{
		{"memory.limit_in_bytes", strconv.FormatInt(limit, 10)},
		{"cgroup.procs", strconv.Itoa(pid)},
	} {
		if err := os.WriteFile(filepath.Join(dir, w.file), []byte(w.value), 0o644); err != nil {
			remove()
			return "", nil, fmt.Errorf("memory cgroup %s: %w", w.file, err)
		}
	}
	return dir, remove, nil
}

func startBrokerProc(t *testing.T, bin string, users map[string]string, extra ...string) *brokerProc {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	for u, p := range users {
		fmt.Fprintf(&b, "%s:%s\n", u, p)
	}
	usersFile := filepath.Join(dir, "users")
	if err := os.WriteFile(usersFile, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, metrics := freeAddr(t), freeAddr(t)
	args := append([]string{"broker", "--listen", addr, "--users-file", usersFile, "--data-dir", filepath.Join(dir, "data"),
		"--metrics-listen", metrics, "--log-level", "warn"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GOMEMLIMIT="+brokerGoMemLimit) // as the chart sets it
	logf, err := os.Create(filepath.Join(dir, "broker.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var cgroup string
	removeCgroup := func() {}
	if os.Getuid() == 0 {
		// Root (CI) must get the limit: a failure here fails the test.
		if cgroup, removeCgroup, err = limitMemory(cmd.Process.Pid, brokerMemoryLimit); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("the broker under the chart's memory limit: %v", err)
		}
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		removeCgroup()
		_ = logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			t.Logf("broker log:\n%s", out[max(0, len(out)-4000):])
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ning broker did not listen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &brokerProc{cmd: cmd, addr: addr, metricsURL: "http://" + metrics + "/metrics", cgroup: cgroup}
}

// checkMemoryLimit fails the test if the broker was OOM-killed or is gone,
// and logs its cgroup's peak usage; without root it says the limit was not
// applied.
func (p *brokerProc) checkMemoryLimit(t *testing.T) {
	t.Helper()
	if p.cgroup == "" {
		t.Logf("not root: the broker ran without the chart's %d MiB memory limit (only its RSS is checked)", brokerMemoryLimit>>20)
		return
	}
	oom, err := os.ReadFile(filepath.Join(p.cgroup, "memory.oom_control"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(oom), "oom_kill ") && !strings.Contains(string(oom), "oom_kill 0") {
		t.Errorf("the broker's memory cgroup (limit %d MiB) OOM-killed it: %s", brokerMemoryLimit>>20, strings.ReplaceAll(string(oom), "\n", "; "))
	}
	if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the broker is gone under the chart's memory limit: %v", err)
	}
	peak, _ := os.ReadFile(filepath.Join(p.cgroup, "memory.max_usage_in_bytes"))
	fail, _ := os.ReadFile(filepath.Join(p.cgroup, "memory.failcnt"))
	t.Logf("under a %d MiB memory cgroup, as in its pod: peak usage (page cache included) %s bytes, %s times at the limit (reclaimed), not OOM-killed",
		brokerMemoryLimit>>20, strings.TrimSpace(string(peak)), strings.TrimSpace(string(fail)))
}

// peakRSS is the process's VmHWM, in bytes.
func (p *brokerProc) peakRSS(t *testing.T) int64 {
	t.Helper()
	return int64(procStatus(t, p.cmd.Process.Pid).VmHWM)
}

// anonRSS is the process's current RssAnon, in bytes: the memory the
// kernel cannot reclaim (the bbolt store's mapped file pages, RssFile, are
// clean page cache it drops under the container's limit instead of killing).
func (p *brokerProc) anonRSS(t *testing.T) int64 {
	t.Helper()
	return int64(procStatus(t, p.cmd.Process.Pid).RssAnon)
}

// rssParts is the process's current VmRSS split (RssAnon, RssFile), for the
// log: a bbolt store's mapped file counts in RSS too.
func (p *brokerProc) rssParts(t *testing.T) string {
	t.Helper()
	st := procStatus(t, p.cmd.Process.Pid)
	return fmt.Sprintf("VmRSS %d kB, RssAnon %d kB, RssFile %d kB", st.VmRSS>>10, st.RssAnon>>10, st.RssFile>>10)
}

// refused reads ning_broker_refused_total{reason} from the broker's /metrics.
func (p *brokerProc) refused(t *testing.T, reason string) float64 {
	t.Helper()
	resp, err := http.Get(p.metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("ning_broker_refused_total{reason=%q} ", reason)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in the broker's metrics", strings.TrimSpace(prefix))
	return 0
}

func pahoConnect(t *testing.T, addr, id, user, pass string) *paho.Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true,
		Username: user, UsernameFlag: true, Password: []byte(pass), PasswordFlag: true})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect %s: %v", user, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

// TestBrokerRetainedFlood is issue 18's "300 retained messages of 1.9 MB"
// against a real `ning broker` process with its default bounds and its
// store on disk: 300 prober identities each retain one 1.9 MB report on its
// own topic. The broker takes them up to its retained-bytes bound and
// refuses the rest (PUBACK 0x97), and its anonymous RSS stays under the
// chart's memory limit. As root it runs in a memory cgroup at that limit,
// as in its pod, and must not be OOM-killed. Its VmHWM is logged too: it
// includes the bbolt store's mapped file pages, page cache the cgroup
// reclaims.
func TestBrokerRetainedFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ning binary: skipped in -short (make test-integration runs it)")
	}
	bin := buildNing(t)
	users := map[string]string{}
	for i := range 300 {
		users[fmt.Sprintf("probe@s%d", i)] = fmt.Sprintf("pw%d", i)
	}
	b := startBrokerProc(t, bin, users)
	payload := make([]byte, 1900_000)
	accepted, refused := 0, 0
	var peakAnon int64
	start := time.Now()
	for i := range 300 {
		c := pahoConnect(t, b.addr, fmt.Sprintf("p%d", i), fmt.Sprintf("probe@s%d", i), fmt.Sprintf("pw%d", i))
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		pr, err := c.Publish(ctx, &paho.Publish{Topic: fmt.Sprintf("ning/v1/latency/s%d", i), QoS: 1, Retain: true, Payload: payload})
		cancel()
		switch {
		case pr == nil:
			t.Fatalf("publish %d: %v", i, err)
		case pr.ReasonCode == 0:
			accepted++
		case pr.ReasonCode == 0x97:
			refused++
		default:
			t.Fatalf("publish %d: reason %#x", i, pr.ReasonCode)
		}
		_ = c.Disconnect(&paho.Disconnect{})
		peakAnon = max(peakAnon, b.anonRSS(t))
	}
	rss := b.peakRSS(t)
	t.Logf("now: %s", b.rssParts(t))
	t.Logf("300 retained 1.9 MB reports in %s: %d accepted, %d refused (0x97; ning_broker_refused_total{reason=retained_bytes} %v); broker peak RSS (VmHWM) %.1f MiB, peak anonymous RSS %.1f MiB (limit %d MiB)",
		time.Since(start).Round(time.Millisecond), accepted, refused, b.refused(t, "retained_bytes"), float64(rss)/(1<<20), float64(peakAnon)/(1<<20), brokerMemoryLimit>>20)
	if want := (32 << 20) / (1900_000 + 20); accepted != want {
		t.Errorf("%d accepted, want %d (the 32 MiB retained bound)", accepted, want)
	}
	if float64(refused) != b.refused(t, "retained_bytes") {
		t.Errorf("%d refused, counted %v", refused, b.refused(t, "retained_bytes"))
	}
	if peakAnon >= brokerMemoryLimit {
		t.Errorf("peak anonymous RSS %d MiB, over the chart's %d MiB limit", peakAnon>>20, brokerMemoryLimit>>20)
	}
	b.checkMemoryLimit(t)
}

// TestBrokerStuckSubscriber is issue 18's "# subscriber that never reads"
// against a real `ning broker`: the scheduler's identity subscribes to
// everything it may (ning/v1/#) and stops reading its socket while a prober
// publishes 1.9 MB reports. The broker drops it once 16 MiB wait for it;
// its peak RSS stays under the chart's limit. A socket that never sends
// CONNECT is closed after the connect timeout.
func TestBrokerStuckSubscriber(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ning binary: skipped in -short (make test-integration runs it)")
	}
	bin := buildNing(t)
	b := startBrokerProc(t, bin, map[string]string{"scheduler": "ps", "probe@a": "pa"})

	silent, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silentStart := time.Now()

	conn, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	cp := packets.NewControlPacket(packets.CONNECT)
	c := cp.Content.(*packets.Connect)
	c.ClientID, c.ProtocolName, c.ProtocolVersion, c.CleanStart = "stuck", "MQTT", 5, true
	c.Username, c.UsernameFlag, c.Password, c.PasswordFlag = "scheduler", true, []byte("ps"), true
	sp := packets.NewControlPacket(packets.SUBSCRIBE)
	sp.Content.(*packets.Subscribe).PacketID = 1
	sp.Content.(*packets.Subscribe).Subscriptions = []packets.SubOptions{{Topic: "ning/v1/#", QoS: 0}}
	for _, p := range []*packets.ControlPacket{cp, sp} {
		if _, err := p.WriteTo(conn); err != nil {
			t.Fatal(err)
		}
		ack, err := packets.ReadPacket(conn)
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := ack.Content.(*packets.Suback); ok && (len(a.Reasons) != 1 || a.Reasons[0] != 0) {
			t.Fatalf("subscription refused: %v", a.Reasons)
		}
	}

	pub := pahoConnect(t, b.addr, "pa", "probe@a", "pa")
	payload := make([]byte, 1900_000)
	start := time.Now()
	var published int
	for published = 1; published <= 400; published++ {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := pub.Publish(ctx, &paho.Publish{Topic: "ning/v1/latency/a", QoS: 0, Payload: payload})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if published%10 == 0 && b.refused(t, "slow_subscriber")+b.refused(t, "write_timeout") > 0 {
			break
		}
	}
	dropped := time.Since(start)
	slow, wto := b.refused(t, "slow_subscriber"), b.refused(t, "write_timeout")
	if slow+wto == 0 {
		t.Fatalf("the stuck subscriber was not dropped after %d reports of 1.9 MB", published-1)
	}
	rss := b.peakRSS(t)
	t.Logf("now: %s", b.rssParts(t))
	t.Logf("stuck ning/v1/# subscriber dropped within %s, after at most %d reports of 1.9 MB (slow_subscriber %v, write_timeout %v); broker peak RSS %.1f MiB (limit %d MiB)",
		dropped.Round(time.Millisecond), published, slow, wto, float64(rss)/(1<<20), brokerMemoryLimit>>20)
	if rss >= brokerMemoryLimit {
		t.Errorf("peak RSS %d MiB, over the chart's %d MiB limit", rss>>20, brokerMemoryLimit>>20)
	}
	b.checkMemoryLimit(t)

	_ = silent.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Error("the broker wrote to a socket that never sent CONNECT")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("a socket without CONNECT was still open after 20 s")
	}
	t.Logf("socket without CONNECT closed %s after it opened (ning_broker_refused_total{reason=connect_timeout} %v)",
		time.Since(silentStart).Round(100*time.Millisecond), b.refused(t, "connect_timeout"))
}
