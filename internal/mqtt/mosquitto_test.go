package mqtt

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	ningv1 "github.com/ning-edge/ning/api/proto/ning/v1"
	"github.com/ning-edge/ning/internal/broker"
)

// mosquittoProc is a broker process this test starts and restarts itself.
type mosquittoProc struct {
	bin, conf, addr, log string
	cmd                  *exec.Cmd
}

func (m *mosquittoProc) start(t *testing.T) {
	t.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("starting the broker: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err := net.Dial("tcp", m.addr); err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the broker did not start listening")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newMosquitto writes conf to dir/mosquitto.conf for a broker on addr. As
// root it adds "user root": the broker would otherwise switch to its own
// unprivileged user, which can neither write persistence files into the
// test's directory nor read a password file there.
func newMosquitto(t *testing.T, bin, dir, addr, conf string) *mosquittoProc {
	t.Helper()
	if os.Geteuid() == 0 {
		conf += "user root\n"
	}
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return &mosquittoProc{bin: bin, conf: path, addr: addr, log: filepath.Join(dir, "mosquitto.log")}
}

// stop sends SIGTERM, so the broker saves its persistence file, and waits.
func (m *mosquittoProc) stop(t *testing.T) {
	t.Helper()
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	_ = m.cmd.Wait()
	m.cmd = nil
}

// TestPublisherMosquittoRestart restarts a real broker process (with persistence,
// as deployed) mid-stream: the publisher queues while it is down, the
// subscriber's persistent session keeps what arrives while it is away, and
// every report arrives.
func TestPublisherMosquittoRestart(t *testing.T) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		t.Skip("mosquitto not installed (apt-get install -y mosquitto): restart test against a real broker skipped")
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	m := newMosquitto(t, bin, dir, addr, fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"+
		"persistence true\npersistence_location %s/\nmax_queued_messages 5000\nlog_type all\nlog_dest stderr\n", port, dir))
	m.start(t)
	defer m.stop(t)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	got := map[string]bool{}
	url := "mqtt://" + addr
	fast := Config{BrokerURL: url, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, ConnectTimeout: time.Second}
	subCfg := fast
	subCfg.ClientID = "ning-restart-test-sub"
	sub, err := NewSubscriber(ctx, subCfg, SubscriberOptions{Topics: []string{TopicLatencyAll}}, func(_ string, payload []byte) {
		var r ningv1.LatencyReport
		if proto.Unmarshal(payload, &r) == nil {
			mu.Lock()
			got[r.GetSourceNode()] = true
			mu.Unlock()
		}
	}, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(context.Background())
	select {
	case <-sub.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("subscriber never subscribed")
	}
	pub, err := NewPublisher(ctx, fast, PublisherOptions{QueueSize: 1000, PublishTimeout: time.Second}, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	publish := func(k int) {
		for range k {
			if err := pub.PublishLatency(report(i)); err != nil {
				t.Fatal(err)
			}
			i++
		}
	}
	publish(50)
	fctx, fcancel := context.WithTimeout(ctx, 20*time.Second)
	defer fcancel()
	if err := pub.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	m.stop(t)
	publish(500) // inside the bound of 1000
	time.Sleep(300 * time.Millisecond)
	m.start(t)
	publish(50)
	if err := pub.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		missing = missing[:0]
		mu.Lock()
		for j := range i {
			if n := fmt.Sprintf("n-%d", j); !got[n] {
				missing = append(missing, n)
			}
		}
		mu.Unlock()
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		logb, _ := os.ReadFile(m.log)
		t.Logf("broker log:\n%s", logb[max(0, len(logb)-4000):])
		t.Fatalf("%d of %d reports lost across the broker restart, e.g. %v", len(missing), i, missing[:min(5, len(missing))])
	}
	t.Logf("all %d reports arrived across a broker restart", i)
	if err := pub.Close(ctx); err != nil {
		t.Error(err)
	}
}

// TestMosquittoPasswordFile runs the credentials checks against a real
// Mosquitto with a password file made by mosquitto_passwd and anonymous
// clients refused: the right password carries a report from a publisher to a
// subscriber; a wrong password, an unknown user and no credentials are
// refused, and the error says the broker refused the user name or password.
// mosquittoBinaries returns the paths of mosquitto and mosquitto_passwd. It
// skips t when they are missing, or fails it under make test-mosquitto
// (NING_MQTT_URL set), which must run it. what names the test.
func mosquittoBinaries(t *testing.T, what string) (bin, passwd string) {
	t.Helper()
	for _, name := range []string{"mosquitto", "mosquitto_passwd"} {
		path, err := exec.LookPath(name)
		if err != nil {
			msg := fmt.Sprintf("%s not installed (apt-get install -y mosquitto): %s test against a real broker", name, what)
			if os.Getenv("NING_MQTT_URL") != "" {
				t.Fatal(msg + ": required under make test-mosquitto")
			}
			t.Skip(msg + " skipped")
		}
		if name == "mosquitto" {
			bin = path
		} else {
			passwd = path
		}
	}
	return bin, passwd
}

func TestMosquittoPasswordFile(t *testing.T) {
	bin, passwd := mosquittoBinaries(t, "password-file")
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "passwd")
	for i, u := range [][2]string{{"probe@site-a", "s3cret"}, {"scheduler", "pw2"}} {
		args := []string{"-b", pwFile, u[0], u[1]}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(passwd, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd %v: %v\n%s", args, err, out)
		}
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	m := newMosquitto(t, bin, dir, addr, fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous false\npassword_file %s\n"+
		"set_tcp_nodelay true\npersistence false\nlog_dest stderr\n", port, pwFile))
	m.start(t)
	defer m.stop(t)
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(m.log)
			t.Logf("mosquitto log:\n%s", b)
		}
	}()

	fast := func(user, pass string) Config {
		return Config{BrokerURL: "mqtt://" + addr, Username: user, Password: pass,
			MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, ConnectTimeout: 2 * time.Second}
	}
	// Mosquitto 2.0 refuses bad credentials with reason code 0x87 (not
	// authorised), not 0x86; the error still names the credentials.
	testCredentials(t, fast, "wrong or missing user name or password): check --mqtt-username and --mqtt-password-file")
}

// TestMosquittoACL runs ning's identities against a real Mosquitto with the
// acl_file broker.MosquittoACL writes (the external-broker case of
// docs/security.md): prober b's forged report on site a's topic and its
// forged traffic report are refused (PUBACK 0x87), its own report arrives,
// and the scheduler may not publish.
func TestMosquittoACL(t *testing.T) {
	bin, passwd := mosquittoBinaries(t, "ACL")
	dir := t.TempDir()
	pwFile, aclFile := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	users := [][2]string{{"probe@a", "pa"}, {"probe@b", "pb"}, {"discover", "pd"}, {"scheduler", "ps"}}
	for i, u := range users {
		args := []string{"-b", pwFile, u[0], u[1]}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(passwd, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd %v: %v\n%s", args, err, out)
		}
	}
	if err := os.WriteFile(aclFile, []byte(broker.MosquittoACL([]string{"a", "b"})), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	m := newMosquitto(t, bin, dir, addr, fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous false\npassword_file %s\nacl_file %s\n"+
		"set_tcp_nodelay true\npersistence false\nlog_dest stderr\n", port, pwFile, aclFile))
	m.start(t)
	defer m.stop(t)

	got := make(chan string, 16)
	sub, err := NewSubscriber(t.Context(), Config{BrokerURL: "mqtt://" + addr, Username: "scheduler", Password: "ps", MinBackoff: 20 * time.Millisecond},
		SubscriberOptions{}, func(topic string, _ []byte) { got <- topic }, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(context.Background())
	waitFor(t, sub.Ready(), 10*time.Second)
	tests := []struct {
		user, pass, topic string
		want              byte
	}{
		{"probe@b", "pb", "ning/v1/latency/a", 0x87},
		{"probe@b", "pb", TopicTraffic, 0x87},
		{"scheduler", "ps", "ning/v1/latency/b", 0x87},
		{"probe@b", "pb", "ning/v1/latency/b", 0},
		{"discover", "pd", TopicTraffic, 0},
	}
	for _, tt := range tests {
		if code := rawPublish(t, addr, tt.user, tt.pass, tt.topic); code != tt.want {
			t.Errorf("%s publishing on %s: PUBACK %#x, want %#x", tt.user, tt.topic, code, tt.want)
		}
	}
	var topics []string
	for deadline := time.After(2 * time.Second); ; {
		select {
		case topic := <-got:
			topics = append(topics, topic)
			continue
		case <-deadline:
		}
		break
	}
	sort.Strings(topics)
	if want := []string{"ning/v1/latency/b", "ning/v1/traffic"}; fmt.Sprint(topics) != fmt.Sprint(want) {
		t.Errorf("the scheduler received %v, want %v", topics, want)
	}
}

// rawPublish publishes one retained QoS 1 message as user with a paho
// client and returns the PUBACK reason code.
func rawPublish(t *testing.T, addr, user, pass, topic string) byte {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: "raw-" + user, KeepAlive: 10, CleanStart: true,
		Username: user, UsernameFlag: true, Password: []byte(pass), PasswordFlag: true})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect as %s: %v", user, err)
	}
	defer c.Disconnect(&paho.Disconnect{})
	pr, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte("x")})
	if pr == nil {
		t.Fatalf("publish as %s on %s: %v", user, topic, err)
	}
	return pr.ReasonCode
}
