// Package hostiletest throws hostile HTTP clients at a running server over
// real TCP: oversized bodies and headers, slow headers (slowloris), a slow
// body, malformed JSON, wrong methods and unknown paths, and many slow
// connections at once. The server must answer each with a 4xx or cut the
// connection within its timeouts, never answer 5xx, and still serve a
// normal request afterwards. It is for tests; every ning HTTP server is
// checked with it.
package hostiletest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Request is one HTTP request.
type Request struct {
	Method, Path, Body string
}

// Target is a running server and what it serves.
type Target struct {
	// Addr is the server's host:port.
	Addr string
	// OK must be answered 2xx before and after the attacks (and while many
	// slow clients hold connections).
	OK Request
	// JSON, when not empty, is a path that takes a JSON body by POST;
	// BodyLimit is its body limit in bytes (an oversized body must get 413).
	JSON      string
	BodyLimit int64
	// WrongMethods must each be answered 405.
	WrongMethods []Request
	// Cut bounds how long a slow client may keep its connection: the
	// server's header and read timeouts plus some slack.
	Cut time.Duration
}

// Outcome is what a hostile request got: a status code, or a connection
// the server cut without answering.
type Outcome struct {
	Code int
	Cut  bool
	// After is how long the server took to answer or cut.
	After time.Duration
}

func (o Outcome) String() string {
	if o.Cut {
		return fmt.Sprintf("connection cut after %v", o.After.Round(time.Millisecond))
	}
	return fmt.Sprintf("%d after %v", o.Code, o.After.Round(time.Millisecond))
}

// Run attacks tg and checks its answers. The attacks run in parallel
// subtests; the normal request runs before and after all of them.
func Run(t *testing.T, tg Target) {
	t.Helper()
	if tg.Cut <= 0 {
		t.Fatal("hostiletest: Target.Cut not set")
	}
	expectOK(t, tg, "before the attacks")
	t.Run("attacks", func(t *testing.T) {
		attack := func(name string, f func(t *testing.T) Outcome, want ...int) {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				o := f(t)
				t.Logf("%s: %v", name, o)
				check(t, name, o, tg.Cut, want)
			})
		}
		big := int64(16 << 20)
		if tg.JSON != "" {
			big = tg.BodyLimit + 1<<20
			attack("oversized body", func(t *testing.T) Outcome {
				return send(t, tg.Addr, "POST", tg.JSON, nil, io.MultiReader(strings.NewReader(`{"Pod":"`), repeat('x', big)), big+8, tg.Cut)
			}, http.StatusRequestEntityTooLarge)
			for i, body := range []string{`{`, `{"Pod":`, `not json`, `[1,2]`, `{"Pod":1}`, "\xff\xfe\x00", ``, `{"Pod":{}}garbage`} {
				attack(fmt.Sprintf("malformed JSON %d %q", i, body), func(t *testing.T) Outcome {
					return send(t, tg.Addr, "POST", tg.JSON, nil, strings.NewReader(body), int64(len(body)), tg.Cut)
				}, http.StatusBadRequest)
			}
			attack("slow body", func(t *testing.T) Outcome { return slowBody(t, tg.Addr, tg.JSON, tg.Cut) }, http.StatusBadRequest, http.StatusRequestTimeout)
		} else {
			// No body is read anywhere: a POST of a large body is refused.
			attack("oversized body", func(t *testing.T) Outcome {
				return send(t, tg.Addr, "POST", tg.OK.Path, nil, repeat('x', big), big, tg.Cut)
			}, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge)
			attack("slow body", func(t *testing.T) Outcome { return slowBody(t, tg.Addr, tg.OK.Path, tg.Cut) }, http.StatusMethodNotAllowed)
		}
		attack("oversized header", func(t *testing.T) Outcome {
			return send(t, tg.Addr, tg.OK.Method, tg.OK.Path, map[string]string{"X-Hostile": strings.Repeat("h", 1<<20)}, strings.NewReader(tg.OK.Body), int64(len(tg.OK.Body)), tg.Cut)
		}, http.StatusRequestHeaderFieldsTooLarge)
		attack("slow headers", func(t *testing.T) Outcome { return slowHeaders(t, tg.Addr, tg.OK.Path, tg.Cut) }, http.StatusRequestTimeout)
		attack("unknown path", func(t *testing.T) Outcome {
			return send(t, tg.Addr, "GET", "/hostile/unknown", nil, nil, 0, tg.Cut)
		}, http.StatusNotFound)
		for _, r := range tg.WrongMethods {
			attack("wrong method "+r.Method+" "+r.Path, func(t *testing.T) Outcome {
				return send(t, tg.Addr, r.Method, r.Path, nil, strings.NewReader(r.Body), int64(len(r.Body)), tg.Cut)
			}, http.StatusMethodNotAllowed)
		}
		t.Run("many slow clients", func(t *testing.T) {
			t.Parallel()
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					_ = c.Close()
				}
			}()
			for range 64 {
				c, err := net.DialTimeout("tcp", tg.Addr, 5*time.Second)
				if err != nil {
					t.Fatalf("slow client %d: %v", len(conns), err)
				}
				conns = append(conns, c)
				if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: hostile\r\n", tg.OK.Path); err != nil {
					t.Fatal(err)
				}
			}
			expectOK(t, tg, "while 64 slow clients hold connections")
		})
	})
	expectOK(t, tg, "after the attacks")
}

// check fails t unless o is one of the wanted codes (or any 4xx when want
// is empty) or a cut, within cut.
func check(t *testing.T, name string, o Outcome, cut time.Duration, want []int) {
	t.Helper()
	if o.After > cut {
		t.Errorf("%s: %v, want an answer or a cut within %v", name, o, cut)
	}
	if o.Cut {
		return
	}
	for _, w := range want {
		if o.Code == w {
			return
		}
	}
	t.Errorf("%s: %v, want one of %v or a cut connection (never 2xx or 5xx)", name, o, want)
}

func expectOK(t *testing.T, tg Target, when string) {
	t.Helper()
	o := send(t, tg.Addr, tg.OK.Method, tg.OK.Path, nil, strings.NewReader(tg.OK.Body), int64(len(tg.OK.Body)), 10*time.Second)
	if o.Cut || o.Code/100 != 2 {
		t.Fatalf("%s %s %s: %v, want 2xx", when, tg.OK.Method, tg.OK.Path, o)
	}
}

// send writes one request with a body of length n over a fresh connection
// and reads the answer. A connection the server resets or closes without
// answering is a cut.
func send(t *testing.T, addr, method, path string, headers map[string]string, body io.Reader, n int64, limit time.Duration) Outcome {
	t.Helper()
	start := time.Now()
	c := dial(t, addr, start.Add(limit+5*time.Second))
	defer func() { _ = c.Close() }()
	var hdr bytes.Buffer
	fmt.Fprintf(&hdr, "%s %s HTTP/1.1\r\nHost: hostile\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n", method, path, n)
	for k, v := range headers {
		fmt.Fprintf(&hdr, "%s: %s\r\n", k, v)
	}
	hdr.WriteString("\r\n")
	// Write in the background: a server may answer (413, 431, 405) before
	// it read the whole request, and stop reading.
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(hdr.Bytes())
		if err == nil && body != nil {
			_, err = io.Copy(c, body)
		}
		werr <- err
	}()
	o := readAnswer(c, start)
	if o.Cut {
		// Without an answer, the write side tells why.
		select {
		case <-werr:
		case <-time.After(time.Second):
		}
	}
	return o
}

// dial connects to addr; reads and writes fail after deadline.
func dial(t *testing.T, addr string, deadline time.Time) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dialling %s: %v", addr, err)
	}
	_ = c.SetDeadline(deadline)
	return c
}

// readAnswer reads a status line, or notes a cut.
func readAnswer(c net.Conn, start time.Time) Outcome {
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	after := time.Since(start)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// Still open at the deadline: not a cut, and too late.
			return Outcome{Code: -1, After: after}
		}
		return Outcome{Cut: true, After: after}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return Outcome{Code: resp.StatusCode, After: after}
}

// slowHeaders sends a request line and then one header line every 200 ms,
// never ending the headers.
func slowHeaders(t *testing.T, addr, path string, limit time.Duration) Outcome {
	t.Helper()
	return trickle(t, addr, fmt.Sprintf("GET %s HTTP/1.1\r\nHost: hostile\r\n", path), func(i int) string {
		return "X-Slow-" + strconv.Itoa(i) + ": 1\r\n"
	}, limit)
}

// slowBody sends complete headers announcing a 1 MB JSON body, then one
// byte of it every 200 ms.
func slowBody(t *testing.T, addr, path string, limit time.Duration) Outcome {
	t.Helper()
	return trickle(t, addr, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: hostile\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{", path), func(int) string {
		return " "
	}, limit)
}

func trickle(t *testing.T, addr, head string, next func(int) string, limit time.Duration) Outcome {
	t.Helper()
	start := time.Now()
	c := dial(t, addr, start.Add(limit+5*time.Second))
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := io.WriteString(c, next(i)); err != nil {
				return
			}
		}
	}()
	return readAnswer(c, start)
}

// repeat is a reader of n bytes b.
func repeat(b byte, n int64) io.Reader {
	return io.LimitReader(byteReader(b), n)
}

type byteReader byte

func (r byteReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}
