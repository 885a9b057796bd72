package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ning-edge/ning/internal/discover"
	"github.com/ning-edge/ning/internal/testcluster"
)

// chartLimitDiscovery is discovery's memory limit in the chart
// (deploy/helm/ning/values.yaml, discovery.resources.limits.memory).
const chartLimitDiscovery = 256 << 20

// TestDiscoveryOTLPUnderAttack runs the real `ning discover --source otlp`
// (TLS and a bearer token) against a real apiserver and sends it issue 18's
// OTLP attacks: pushes without the token, series dated a year ahead, 10,000
// series from one source followed by a real node from another, and large
// attributes from 20 parallel pushers. It checks each answer, the refusal
// counts, and that the process's peak RSS stays below the chart's 256Mi.
func TestDiscoveryOTLPUnderAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ning binary: skipped in -short (make test-integration runs it)")
	}
	bin := buildNing(t)
	cp := testcluster.Start(t)
	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedCert(t, dir)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	otlpAddr, httpAddr := freeAddr(t), freeAddr(t)
	cmd, logs := startNing(t, bin, "discover", "--source", "otlp", "--dry-run", "--kubeconfig", cp.Kubeconfig,
		"--otlp-listen", otlpAddr, "--listen", httpAddr, "--interval", "1h", "--otlp-match", "",
		"--otlp-tls-cert", certFile, "--otlp-tls-key", keyFile, "--otlp-token-file", tokenFile, "--log-level", "warn")
	waitHealthy(t, "http://"+httpAddr+"/healthz")

	// dial connects from a loopback source address (another "source").
	dial := func(from string, token string) collectormetrics.MetricsServiceClient {
		opts := []grpc.DialOption{
			grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
				return d.DialContext(ctx, "tcp", addr)
			}),
			grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64 << 20)),
		}
		conn, err := grpc.NewClient(otlpAddr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return collectormetrics.NewMetricsServiceClient(conn)
	}
	push := func(c collectormetrics.MetricsServiceClient, token string, req *collectormetrics.ExportMetricsServiceRequest) (*collectormetrics.ExportMetricsServiceResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		return c.Export(ctx, req)
	}
	now := time.Now()

	// Without the token, or with another one: refused.
	attacker := dial("127.0.0.1", "")
	for _, token := range []string{"", "guessed"} {
		_, err := push(attacker, token, otlpSeries(1, "edge-a1", now, 0))
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("push with token %q: %v, want Unauthenticated", token, err)
		}
		t.Logf("push with token %q: %s", token, status.Code(err))
	}

	// Dated a year ahead: every point rejected.
	resp, err := push(attacker, "s3cret-token", otlpSeries(100, "edge-future", now.AddDate(1, 0, 0), 0))
	if err != nil || resp.GetPartialSuccess().GetRejectedDataPoints() != 100 {
		t.Errorf("100 future-dated points: %v, rejected %d, want all 100 rejected", err, resp.GetPartialSuccess().GetRejectedDataPoints())
	}
	t.Logf("100 points a year ahead: %d rejected (%s)", resp.GetPartialSuccess().GetRejectedDataPoints(), resp.GetPartialSuccess().GetErrorMessage())

	// 10,000 series from one source: its cap holds, and a real node pushing
	// from another source still gets in.
	resp, err = push(attacker, "s3cret-token", otlpSeries(10_000, "flood", now, 0))
	floodRejected := resp.GetPartialSuccess().GetRejectedDataPoints()
	if err != nil || floodRejected != 10_000-discover.DefaultOTLPMaxSeriesPerSource {
		t.Errorf("10,000 series from one source: %v, %d rejected, want %d", err, floodRejected, 10_000-discover.DefaultOTLPMaxSeriesPerSource)
	}
	t.Logf("10,000 series from one source: %d accepted, %d rejected", 10_000-floodRejected, floodRejected)
	gateway := dial("127.0.0.2", "")
	resp, err = push(gateway, "s3cret-token", otlpSeries(1, "edge-a1", now, 0))
	if err != nil || resp.GetPartialSuccess().GetRejectedDataPoints() != 0 {
		t.Errorf("the real node after the flood: %v, %v; want accepted", err, resp.GetPartialSuccess())
	}
	t.Logf("a real node from another source after the flood: %d rejected", resp.GetPartialSuccess().GetRejectedDataPoints())

	// Large attributes, 20 pushers in parallel, 3 MB each, 5 times.
	codesSeen := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(fmt.Sprintf("127.0.1.%d", i+1), "")
			for range 5 {
				resp, err := push(c, "s3cret-token", otlpSeries(30, fmt.Sprint("big-", i), now, 100<<10))
				key := status.Code(err).String()
				if err == nil {
					key = fmt.Sprintf("OK, %d rejected", resp.GetPartialSuccess().GetRejectedDataPoints())
				}
				mu.Lock()
				codesSeen[key]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("100 pushes of 30 points with 100 KB attributes each: %v", codesSeen)
	// A push is answered with every point rejected, or refused in flight,
	// or (its connection waiting for one of the receiver's few slots) runs
	// out of time: never stored.
	for k := range codesSeen {
		switch k {
		case "OK, 30 rejected", codes.ResourceExhausted.String(), codes.Unavailable.String(), codes.DeadlineExceeded.String():
		default:
			t.Errorf("large attributes: answers %v, want every point rejected or the push refused", codesSeen)
		}
	}

	m := scrape(t, "http://"+httpAddr+"/metrics")
	for _, reason := range []string{discover.ReasonOTLPUnauthorized, discover.ReasonOTLPFuture, discover.ReasonOTLPTooManySeries, discover.ReasonOTLPTooLarge} {
		got := m["ning_discover_errors_total/"+reason]
		t.Logf("ning_discover_errors_total{reason=%q} = %v", reason, got)
		if got == 0 {
			t.Errorf("no %s refusal counted", reason)
		}
	}
	if n := strings.Count(logs.String(), "reason="+discover.ReasonOTLPTooLarge); n > 20 {
		t.Errorf("%d log lines for %s, want at most one per source (20)", n, discover.ReasonOTLPTooLarge)
	}
	hwm := peakRSS(t, cmd.Process.Pid)
	t.Logf("discovery peak RSS (VmHWM): %.1f MiB (chart limit 256 MiB)", float64(hwm)/(1<<20))
	if hwm >= chartLimitDiscovery {
		t.Errorf("peak RSS %d MiB, at or over the chart's 256 MiB limit", hwm>>20)
	}
}

// otlpSeries is one push of n series (one cumulative point each) of the
// default counter, for node (series i of node "x" names node "x-i" when
// n > 1), stamped at, each point carrying pad bytes of attribute.
func otlpSeries(n int, node string, at time.Time, pad int) *collectormetrics.ExportMetricsServiceRequest {
	req := &collectormetrics.ExportMetricsServiceRequest{}
	big := strings.Repeat("a", pad)
	for i := range n {
		name := node
		if n > 1 {
			name = fmt.Sprintf("%s-%d", node, i)
		}
		attrs := []*commonpb.KeyValue{otlpAttr("entrypoint", "web")}
		if pad > 0 {
			attrs = append(attrs, otlpAttr("padding", big))
		}
		req.ResourceMetrics = append(req.ResourceMetrics, &metricspb.ResourceMetrics{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{otlpAttr(discover.DefaultNodeAttr, name)}},
			ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{{Name: discover.DefaultOTLPMetric,
				Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{IsMonotonic: true,
					AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE,
					DataPoints: []*metricspb.NumberDataPoint{{TimeUnixNano: uint64(at.UnixNano()), Attributes: attrs,
						Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: 100}}}}}}}}},
		})
	}
	return req
}

func otlpAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// selfSignedCert writes a self-signed certificate for localhost and
// 127.0.0.1 into dir and returns its files and a pool trusting it.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	crt, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(crt)
	return certFile, keyFile, pool
}
