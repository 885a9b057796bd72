package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"testing"
	"time"
)

// reuses sends n requests over one keep-alive client and counts those that
// went over a connection already used.
func reuses(t *testing.T, c config, n int) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer("", c)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	reused := 0
	for range n {
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) {
				if i.Reused {
					reused++
				}
			},
		}), http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	return reused
}

// TestMaxConnAge: without a bound every request after the first reuses the
// connection; with a bound every connection past it is closed after its
// answer, so none is reused.
func TestMaxConnAge(t *testing.T) {
	if got := reuses(t, config{concurrency: 1}, 5); got != 4 {
		t.Errorf("no bound: %d of 5 requests reused the connection, want 4", got)
	}
	if got := reuses(t, config{concurrency: 1, maxConnAge: time.Nanosecond}, 5); got != 0 {
		t.Errorf("-max-conn-age 1ns: %d of 5 requests reused a connection, want 0", got)
	}
}
