package netns

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ning-edge/ning/internal/mqtt"
)

// The demo runs the lab in a helper process (`ning demo netns-lab`), not in
// its own: the delayers and the probers time packets in user space, and in
// the demo's process they would wait behind the embedded apiserver, etcd and
// scheduler for the Go scheduler and the garbage collector (measured: +2.2 ms
// on every RTT in process, against +0.6 ms in a process of their own). The
// helper also runs at a higher CPU priority (nice -10) for the same reason.
//
// The protocol, one line each, over the helper's stdin and stdout:
//
//	demo -> helper: the request (JSON: sites, RTTs; -1 for no link)
//	helper -> demo: "ready N" (N links) or "error MESSAGE"
//	demo -> helper: the broker URL; the probers start publishing to it
//	demo closes stdin: the helper stops the probers, removes the lab, exits 0
//
// SIGINT or SIGTERM stops the helper the same way. It is started with a
// parent-death signal, so it cleans up even when the demo is killed.

// HelperArgs are the arguments after the ning binary that run the helper.
var HelperArgs = []string{"demo", "netns-lab"}

// helperNice is the helper's nice value (it runs as root).
const helperNice = -10

type request struct {
	Sites []string    `json:"sites"`
	RTT   [][]float64 `json:"rttMs"`
	Owner int         `json:"owner"`
}

// Helper is the running helper process, seen from the demo.
type Helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	links int
	done  chan error
}

// StartHelper starts bin's helper, sends it the topology and waits until
// the lab is built. Its warnings are logged to log. Close it to remove the
// lab. ctx ending stops the helper (SIGTERM, then SIGKILL after 20 s).
func StartHelper(ctx context.Context, bin string, sites []string, rtt [][]float64, log *slog.Logger) (h *Helper, err error) {
	req := request{Sites: sites, RTT: make([][]float64, len(rtt)), Owner: os.Getpid()}
	for i, row := range rtt {
		req.RTT[i] = make([]float64, len(row))
		for j, v := range row {
			if math.IsInf(v, 1) || math.IsNaN(v) {
				v = -1
			}
			req.RTT[i][j] = v
		}
	}
	line, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("netns helper: %w", err)
	}
	args := append([]string{bin}, HelperArgs...)
	if nice, err := exec.LookPath("nice"); err == nil {
		args = append([]string{nice, "-n", fmt.Sprint(helperNice)}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	cmd.Stderr = &logWriter{log: log}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("netns helper: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("netns helper: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the netns helper %s: %w", bin, err)
	}
	h = &Helper{cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	type reply struct {
		line string
		err  error
	}
	replyc := make(chan reply, 1)
	go func() {
		out := bufio.NewReader(stdout)
		line, err := out.ReadString('\n')
		replyc <- reply{strings.TrimSpace(line), err}
		_, _ = io.Copy(io.Discard, out)
		h.done <- cmd.Wait()
	}()
	defer func() {
		if err != nil {
			_ = h.Close()
		}
	}()
	if _, err := fmt.Fprintf(stdin, "%s\n", line); err != nil {
		return h, fmt.Errorf("netns helper: sending the topology: %w", err)
	}
	var rep reply
	select {
	case rep = <-replyc:
	case <-ctx.Done():
		return h, fmt.Errorf("netns helper: waiting for the lab: %w", ctx.Err())
	}
	switch word, rest, _ := strings.Cut(rep.line, " "); word {
	case "ready":
		if _, err := fmt.Sscan(rest, &h.links); err != nil {
			return h, fmt.Errorf("netns helper: bad reply %q", rep.line)
		}
		return h, nil
	case "error":
		return h, errors.New(rest)
	default:
		if rep.err != nil {
			return h, fmt.Errorf("netns helper ended before the lab was built: %w (%v)", rep.err, h.wait())
		}
		return h, fmt.Errorf("netns helper: bad reply %q", rep.line)
	}
}

// Links is the number of links the helper built.
func (h *Helper) Links() int { return h.links }

// Probe starts the probers, publishing to the broker at url.
func (h *Helper) Probe(url string) error {
	if _, err := fmt.Fprintf(h.stdin, "%s\n", url); err != nil {
		return fmt.Errorf("netns helper: sending the broker address: %w", err)
	}
	return nil
}

// Close tells the helper to stop and waits for it: it stops the probers and
// removes the namespaces before it exits.
func (h *Helper) Close() error {
	_ = h.stdin.Close()
	if err := h.wait(); err != nil {
		return fmt.Errorf("netns helper: %w", err)
	}
	return nil
}

func (h *Helper) wait() error {
	select {
	case err := <-h.done:
		h.done <- err // for a second caller
		return err
	case <-time.After(30 * time.Second):
		_ = h.cmd.Process.Kill()
		return errors.New("did not stop within 30 s: killed")
	}
}

// logWriter logs every line the helper writes to stderr.
type logWriter struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.log.Warn("netns helper", "log", string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// Serve is the helper process's side: it reads the request from in, builds
// the lab, answers on out, waits for the broker URL, runs one prober per site
// until in closes or ctx ends, and removes the lab.
func Serve(ctx context.Context, in io.Reader, out io.Writer, log *slog.Logger) (err error) {
	r := bufio.NewReader(in)
	fail := func(err error) error {
		_, _ = fmt.Fprintf(out, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return fail(fmt.Errorf("netns helper: reading the request: %w", err))
	}
	var req request
	if err := json.Unmarshal([]byte(line), &req); err != nil {
		return fail(fmt.Errorf("netns helper: the request: %w", err))
	}
	for _, row := range req.RTT {
		for j, v := range row {
			if v < 0 {
				row[j] = math.Inf(1)
			}
		}
	}
	lab, err := Build(ctx, Config{Sites: req.Sites, RTT: req.RTT, Owner: req.Owner, Log: log})
	if err != nil {
		return fail(err)
	}
	defer func() { err = errors.Join(err, lab.Close()) }()
	links := 0
	for _, s := range req.Sites {
		links += len(lab.Targets(s))
	}
	if _, err := fmt.Fprintf(out, "ready %d\n", links/2); err != nil {
		return err
	}

	// The broker's address, then stdin stays open while the demo runs.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	urlc := make(chan string, 1)
	go func() {
		line, err := r.ReadString('\n')
		if err == nil {
			urlc <- strings.TrimSpace(line)
			_, _ = io.Copy(io.Discard, r)
		}
		stop()
	}()
	var url string
	select {
	case <-ctx.Done():
		return nil
	case url = <-urlc:
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(req.Sites))
	for _, s := range req.Sites {
		pub, err := mqtt.NewPublisher(ctx, mqtt.Config{BrokerURL: url, ClientID: "ning-probe-" + s}, mqtt.PublisherOptions{}, prometheus.NewRegistry(), log)
		if err != nil {
			stop()
			wg.Wait()
			return fmt.Errorf("prober %s: MQTT publisher: %w", s, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- lab.Run(ctx, s, pub)
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			_ = pub.Close(cctx)
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for e := range errs {
		all = append(all, e)
	}
	return errors.Join(all...)
}
