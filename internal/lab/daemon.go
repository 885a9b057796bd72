package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Serve is the daemon: it brings the lab up, answers on ControlSocket, and
// tears everything down when ctx ends or a client asks it to.
func Serve(ctx context.Context, cfg Config) error {
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(RunDir+"/lab.pid", []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
		return err
	}
	_ = os.Remove(ControlSocket)
	ln, err := net.Listen("unix", ControlSocket)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu     sync.Mutex
		lab    *Lab
		upErr  error
		ready  bool
		downed = make(chan struct{})
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		st := Status{Kubeconfig: Kubeconfig}
		if lab != nil {
			st = lab.status()
		}
		st.Ready = ready
		if upErr != nil {
			st.Error = upErr.Error()
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	act := func(w http.ResponseWriter, f func(*Lab) ([]string, error)) {
		mu.Lock()
		l, ok := lab, ready
		mu.Unlock()
		if !ok {
			http.Error(w, "the lab is not up", http.StatusConflict)
			return
		}
		did, err := f(l)
		for _, d := range did {
			_, _ = fmt.Fprintln(w, d)
		}
		if err != nil {
			_, _ = fmt.Fprintln(w, "error:", err)
		}
	}
	mux.HandleFunc("POST /site", func(w http.ResponseWriter, r *http.Request) {
		act(w, func(l *Lab) ([]string, error) {
			return l.SiteAction(r.Context(), r.FormValue("name"), r.FormValue("action"))
		})
	})
	mux.HandleFunc("POST /link", func(w http.ResponseWriter, r *http.Request) {
		act(w, func(l *Lab) ([]string, error) {
			rtt, err := time.ParseDuration(r.FormValue("rtt"))
			if err != nil {
				return nil, fmt.Errorf("--rtt %q: %w", r.FormValue("rtt"), err)
			}
			return l.SetLink(r.FormValue("a"), r.FormValue("b"), rtt)
		})
	})
	mux.HandleFunc("POST /down", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "stopping the lab")
		select {
		case <-downed:
		default:
			close(downed)
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()

	// The bring-up has a context of its own: a teardown cancels it and waits
	// for it to return, so that nothing it starts (a kubelet, a ctr import)
	// outlives the cleaning.
	upCtx, cancelUp := context.WithCancel(ctx)
	defer cancelUp()
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		l, err := Up(upCtx, cfg)
		mu.Lock()
		lab, upErr, ready = l, err, err == nil
		mu.Unlock()
		if err != nil {
			cfg.Log.Error("lab: bring-up failed", "err", err)
			return
		}
		cfg.Log.Info("lab: ready", "kubeconfig", Kubeconfig)
	}()
	select {
	case <-ctx.Done():
	case <-downed:
	}
	cfg.Log.Info("lab: tearing down")
	cancelUp()
	select {
	case <-upDone:
	case <-time.After(time.Minute):
		cfg.Log.Warn("lab: the bring-up did not stop within a minute of its cancellation; cleaning anyway")
	}
	mu.Lock()
	l := lab
	mu.Unlock()
	var did []string
	if l != nil {
		did, err = l.Close(context.Background())
	} else {
		did, err = Clean(context.Background())
	}
	for _, d := range did {
		cfg.Log.Info("lab: " + d)
	}
	_ = srv.Close()
	return err
}

// client talks to the daemon over ControlSocket.
func client() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", ControlSocket)
	}}}
}

// GetStatus asks the daemon for its status.
func GetStatus(ctx context.Context) (*Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://lab/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("no lab running (%s): %w", ControlSocket, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("lab status: %w", err)
	}
	return &st, nil
}

// Do sends an action to the daemon (path "site", "link" or "down") and
// copies its answer, what it did, to out.
func Do(ctx context.Context, out io.Writer, path string, form url.Values) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://lab/"+path, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client().Do(req)
	if err != nil {
		return fmt.Errorf("no lab running (%s): %w", ControlSocket, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if _, err := out.Write(body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("lab: %s", resp.Status)
	}
	if i := strings.LastIndex(string(body), "error: "); i >= 0 {
		return errors.New(strings.TrimSpace(string(body[i+len("error: "):])))
	}
	return nil
}

// Start launches the daemon (self with args, in a new session, its log in
// StateDir/lab.log) after removing a dead lab's leftovers, follows its log
// on out, and returns once the lab is ready or its bring-up failed. A lab
// that is running is an error; ctx ending (Ctrl-C) during the bring-up
// tears the lab down.
func Start(ctx context.Context, out io.Writer, self string, args []string, plan *Plan, binDir string) error {
	if err := Check(plan, binDir); err != nil {
		return err
	}
	if st, err := GetStatus(ctx); err == nil {
		return fmt.Errorf("a lab is already running (ready %t): run ning lab down first", st.Ready)
	}
	did, err := Clean(ctx)
	for _, d := range did {
		_, _ = fmt.Fprintln(out, "leftovers: "+d)
	}
	if err != nil {
		return fmt.Errorf("cleaning an earlier lab: %w", err)
	}
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return err
	}
	logFile := StateDir + "/lab.log"
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(self, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("starting the lab daemon: %w", err)
	}
	_ = f.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	lf, err := os.Open(logFile)
	if err != nil {
		return err
	}
	defer func() { _ = lf.Close() }()
	rd := bufio.NewReader(lf)
	follow := func() {
		for {
			line, err := rd.ReadString('\n')
			if line != "" && strings.HasSuffix(line, "\n") {
				_, _ = fmt.Fprint(out, line)
			}
			if err != nil {
				return
			}
		}
	}
	for {
		follow()
		select {
		case err := <-exited:
			follow()
			return fmt.Errorf("the lab daemon exited: %v (log: %s)", err, logFile)
		case <-ctx.Done():
			_, _ = fmt.Fprintln(out, "interrupted: tearing the lab down")
			return errors.Join(ctx.Err(), Down(context.Background(), out))
		case <-time.After(500 * time.Millisecond):
		}
		st, err := GetStatus(ctx)
		if err != nil {
			continue
		}
		if st.Error != "" {
			follow()
			return fmt.Errorf("lab bring-up failed: %s (log: %s; ning lab down removes what it made)", st.Error, logFile)
		}
		if st.Ready {
			follow()
			for _, p := range st.Phases {
				_, _ = fmt.Fprintf(out, "  %-50s %6.1f s\n", p.Name, p.Seconds)
			}
			_, _ = fmt.Fprintf(out, "KUBECONFIG=%s\n", st.Kubeconfig)
			return nil
		}
	}
}

// Down asks a running daemon to tear the lab down, waits for it, then
// removes whatever is left (all of it when no daemon runs).
func Down(ctx context.Context, out io.Writer) error {
	if err := Do(ctx, io.Discard, "down", nil); err == nil {
		_, _ = fmt.Fprintln(out, "asked the lab daemon to stop")
		pid, _ := daemonPid()
		for range 120 {
			if pid == 0 || syscall.Kill(pid, 0) != nil {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	did, err := Clean(ctx)
	for _, d := range did {
		_, _ = fmt.Fprintln(out, d)
	}
	if err == nil {
		_, _ = fmt.Fprintln(out, "the lab is down: nothing of it is left")
	}
	return err
}
