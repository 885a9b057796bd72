package discover

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// serverOptions turns Auth into gRPC server options: TLS credentials
// (with client certificates required when ClientCAFile is set) and an
// interceptor checking the bearer token when TokenFile is set. Refusals go
// to report.
func (a OTLPAuth) serverOptions(report func(*DataError)) ([]grpc.ServerOption, error) {
	if a.TokenFile == "" && a.ClientCAFile == "" && !a.Insecure {
		return nil, errors.New("the OTLP receiver needs a bearer token (--otlp-token-file) or client certificates (--otlp-client-ca), " +
			"or --otlp-insecure to accept pushes from anyone")
	}
	if (a.CertFile == "") != (a.KeyFile == "") {
		return nil, errors.New("--otlp-tls-cert and --otlp-tls-key go together")
	}
	if a.CertFile == "" && !a.Insecure {
		return nil, errors.New("the OTLP receiver's token or client certificates need TLS (--otlp-tls-cert, --otlp-tls-key), or --otlp-insecure")
	}
	var opts []grpc.ServerOption
	if a.CertFile != "" {
		crt, err := tls.LoadX509KeyPair(a.CertFile, a.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("OTLP TLS certificate: %w", err)
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{crt}, MinVersion: tls.VersionTLS12}
		if a.ClientCAFile != "" {
			pem, err := os.ReadFile(a.ClientCAFile)
			if err != nil {
				return nil, fmt.Errorf("OTLP client CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("OTLP client CA %s holds no PEM certificate", a.ClientCAFile)
			}
			cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	} else if a.ClientCAFile != "" {
		return nil, errors.New("--otlp-client-ca needs TLS (--otlp-tls-cert, --otlp-tls-key)")
	}
	if a.TokenFile != "" {
		b, err := os.ReadFile(a.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("OTLP token: %w", err)
		}
		want := []byte("Bearer " + strings.TrimSpace(string(b)))
		if len(want) == len("Bearer ") {
			return nil, fmt.Errorf("OTLP token file %s is empty", a.TokenFile)
		}
		opts = append(opts, grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			for _, got := range md.Get("authorization") {
				if subtle.ConstantTimeCompare([]byte(got), want) == 1 {
					return h(ctx, req)
				}
			}
			report(&DataError{Reason: ReasonOTLPUnauthorized, Source: peerSource(ctx), Detail: "push without the bearer token refused"})
			return nil, status.Error(codes.Unauthenticated, "a bearer token is required")
		}))
	}
	return opts, nil
}

// peerSource is a push's source: its peer's IP address ("" unknown).
func peerSource(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return p.Addr.String()
	}
	return host
}
