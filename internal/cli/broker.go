package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ning-edge/ning/internal/broker"
	"github.com/ning-edge/ning/internal/topology"
)

type brokerOptions struct {
	listen, usersFile, username, passwordFile string
	allowAnonymous                            bool
	cert, key, clientCA                       string
	dataDir                                   string
	logLevel                                  string
	identityKeyFile, metricsListen            string
	bounds                                    broker.Bounds
	maxPacketSize                             uint32
	connectTimeout, writeTimeout              time.Duration
	tokenAudience, kubeconfig, siteLabel      string
	tokenIdentities                           []string
}

func newBrokerCommand() *cobra.Command {
	o := &brokerOptions{}
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run an embedded MQTT 5 broker for ning's reports",
		Long: `broker runs an MQTT 5 broker (mochi-mqtt) inside ning, for single-binary setups
and the demo. Clients must authenticate unless --allow-anonymous is given:
with a users file of identity:password lines, --username with
--password-file, the derived password of an identity under
--identity-key-file (see "ning broker credential"), the username kubernetes
with a pod's ServiceAccount token (--token-identity; reviewed through the
Kubernetes TokenReview API), or, with
--tls-client-ca, a client certificate naming the identity (URI SAN
ning:IDENTITY, or the common name). An identity is probe@SITE (may publish
only ning/v1/latency/SITE), discover (only ning/v1/traffic), scheduler,
extender, rescheduler or dashboard (may only subscribe to ning/v1/...) or
admin (everything). A client ID belongs to the identity holding its session.
--tls-cert/--tls-key enable TLS. It listens on 127.0.0.1 unless told
otherwise.

The broker bounds its memory: retained messages (count and bytes, per
identity and in total; beyond them a retained publish is refused with
reason 0x97), the bytes waiting for one subscriber (past them it is
disconnected and its session dropped), one write to a client (a client
that stops reading is disconnected), packet size and the time to CONNECT.
Each refusal is counted in ning_broker_refused_total{reason} (on
--metrics-listen) and logged once per source and reason every 10 s.

Without --data-dir the broker keeps everything in memory: a restart loses
sessions, subscriptions and retained reports. With --data-dir it keeps them in
DIR/broker.db, so subscribers reconnecting after a restart still get what was
published for them meanwhile.`,
		Example: `  ning broker --allow-anonymous
  ning broker --listen 0.0.0.0:8883 --users-file users --tls-cert tls.crt --tls-key tls.key
  ning broker --users-file users --data-dir /var/lib/ning-broker`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd)
			defer stop()
			return runBroker(ctx, *o)
		},
	}
	o.AddFlags(cmd.Flags())
	cmd.AddCommand(newBrokerCredentialCommand())
	return cmd
}

func (o *brokerOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.listen, "listen", broker.DefaultListen, "host:port to listen on")
	f.StringVar(&o.usersFile, "users-file", "", "file of username:password lines")
	f.StringVar(&o.username, "username", "", "a single user's name (with --password-file)")
	f.StringVar(&o.passwordFile, "password-file", "", "file holding that user's password")
	f.BoolVar(&o.allowAnonymous, "allow-anonymous", false, "accept clients without credentials (only when no users are given)")
	f.StringVar(&o.cert, "tls-cert", "", "server certificate (enables TLS)")
	f.StringVar(&o.key, "tls-key", "", "server key")
	f.StringVar(&o.clientCA, "tls-client-ca", "", "CA that client certificates must chain to (requires them)")
	f.StringVar(&o.dataDir, "data-dir", "", "directory for sessions, subscriptions and retained messages (DIR/broker.db; empty: memory only)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.identityKeyFile, "identity-key-file", "", "key file: accept each identity's derived password (ning broker credential)")
	f.StringVar(&o.metricsListen, "metrics-listen", "", "host:port serving /healthz and /metrics (empty: none)")
	f.IntVar(&o.bounds.RetainedMessages, "max-retained", broker.DefaultRetainedMessages, "retained messages at most, over all identities")
	f.Int64Var(&o.bounds.RetainedBytes, "max-retained-bytes", broker.DefaultRetainedBytes, "bytes of retained messages at most, over all identities")
	f.IntVar(&o.bounds.RetainedMessagesPerIdentity, "max-retained-per-identity", broker.DefaultRetainedMessagesPerIdentity, "retained messages one identity may hold")
	f.Int64Var(&o.bounds.RetainedBytesPerIdentity, "max-retained-bytes-per-identity", broker.DefaultRetainedBytesPerIdentity, "bytes of retained messages one identity may hold")
	f.Int64Var(&o.bounds.PendingBytesPerClient, "max-pending-bytes", broker.DefaultPendingBytesPerClient, "bytes waiting for one subscriber before it is disconnected")
	f.Uint32Var(&o.maxPacketSize, "max-packet-size", broker.DefaultMaxPacketSize, "largest MQTT packet accepted, in bytes")
	f.DurationVar(&o.connectTimeout, "connect-timeout", broker.DefaultConnectTimeout, "time a socket has to send CONNECT")
	f.DurationVar(&o.writeTimeout, "write-timeout", broker.DefaultWriteTimeout, "time one write to a client may block before it is disconnected")
	f.StringArrayVar(&o.tokenIdentities, "token-identity", nil, "`SA=IDENTITY`: accept username kubernetes with ServiceAccount SA's token (system:serviceaccount:NS:NAME) as IDENTITY; probe means probe@<site of the pod's node>; repeatable")
	f.StringVar(&o.tokenAudience, "token-audience", "ning-broker", "audience the ServiceAccount tokens must carry (with --token-identity)")
	f.StringVar(&o.siteLabel, "site-label", topology.DefaultSiteLabel, "node label naming a prober's site (with --token-identity)")
	addKubeconfigFlag(f, &o.kubeconfig)
}

func (o *brokerOptions) Validate() error {
	var errs []error
	if err := validLogLevel(o.logLevel); err != nil {
		errs = append(errs, err)
	}
	if (o.username == "") != (o.passwordFile == "") {
		errs = append(errs, errors.New("--username and --password-file go together"))
	}
	for _, kv := range o.tokenIdentities {
		if _, _, ok := strings.Cut(kv, "="); !ok {
			errs = append(errs, fmt.Errorf("--token-identity %q: want SERVICEACCOUNT=IDENTITY", kv))
		}
	}
	return errors.Join(errs...)
}

func (o *brokerOptions) Config() (broker.RunConfig, error) {
	log, err := newLogger(o.logLevel)
	if err != nil {
		return broker.RunConfig{}, err
	}
	cfg := broker.Config{Listen: o.listen, AllowAnonymous: o.allowAnonymous, CertFile: o.cert, KeyFile: o.key, ClientCAFile: o.clientCA, DataDir: o.dataDir,
		Bounds: o.bounds, MaxPacketSize: o.maxPacketSize, ConnectTimeout: o.connectTimeout, WriteTimeout: o.writeTimeout}
	if o.identityKeyFile != "" {
		key, err := readIdentityKey(o.identityKeyFile)
		if err != nil {
			return broker.RunConfig{}, err
		}
		cfg.IdentityKey = key
	}
	if len(o.tokenIdentities) > 0 {
		ids := map[string]string{}
		for _, kv := range o.tokenIdentities {
			sa, id, _ := strings.Cut(kv, "=")
			ids[sa] = id
		}
		client, err := kubeClient(o.kubeconfig)
		if err != nil {
			return broker.RunConfig{}, err
		}
		cfg.Tokens = &broker.TokenAuth{Client: client, Audience: o.tokenAudience, Identities: ids, SiteLabel: o.siteLabel}
	}
	users := map[string]string{}
	if o.usersFile != "" {
		data, err := os.ReadFile(o.usersFile)
		if err != nil {
			return broker.RunConfig{}, fmt.Errorf("reading users: %w", err)
		}
		if users, err = broker.ParseUsers(data); err != nil {
			return broker.RunConfig{}, fmt.Errorf("%s: %w", o.usersFile, err)
		}
	}
	if o.username != "" {
		b, err := os.ReadFile(o.passwordFile)
		if err != nil {
			return broker.RunConfig{}, fmt.Errorf("reading password: %w", err)
		}
		users[o.username] = strings.TrimRight(string(b), "\r\n")
	}
	cfg.Users = users
	return broker.RunConfig{Config: cfg, Log: log, MetricsListen: o.metricsListen}, nil
}

func newBrokerCredentialCommand() *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "credential IDENTITY",
		Short: "Print the password of an identity under the broker's identity key",
		Long: `credential prints the derived MQTT password of IDENTITY (probe@SITE, discover,
scheduler, extender, rescheduler, dashboard or admin) under the key a broker
started with --identity-key-file holds. Give it to that component only.`,
		Example: `  ning broker credential --identity-key-file broker.key probe@dallas`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := broker.ParseIdentity(args[0]); err != nil {
				return err
			}
			key, err := readIdentityKey(keyFile)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), broker.DerivedPassword(key, args[0]))
			return err
		},
	}
	cmd.Flags().StringVar(&keyFile, "identity-key-file", "", "the broker's identity key")
	return cmd
}

func readIdentityKey(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("--identity-key-file: want the key file")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the identity key: %w", err)
	}
	key := []byte(strings.TrimRight(string(b), "\r\n"))
	if len(key) < 16 {
		return nil, fmt.Errorf("identity key %s: %d bytes, want at least 16", path, len(key))
	}
	return key, nil
}

func runBroker(ctx context.Context, o brokerOptions) error {
	return run(ctx, &o, broker.Run)
}
