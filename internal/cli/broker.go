package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ning-edge/ning/internal/broker"
)

type brokerOptions struct {
	listen, usersFile, username, passwordFile string
	allowAnonymous                            bool
	cert, key, clientCA                       string
	dataDir                                   string
	logLevel                                  string
}

func newBrokerCommand() *cobra.Command {
	o := &brokerOptions{}
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run an embedded MQTT 5 broker for ning's reports",
		Long: `broker runs an MQTT 5 broker (mochi-mqtt) inside ning, for single-binary setups
and the demo. Clients must authenticate (a users file of username:password
lines, or --username with --password-file) unless --allow-anonymous is given.
--tls-cert/--tls-key enable TLS; --tls-client-ca also requires client
certificates. It listens on 127.0.0.1 unless told otherwise.

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
}

func (o *brokerOptions) Validate() error {
	var errs []error
	if err := validLogLevel(o.logLevel); err != nil {
		errs = append(errs, err)
	}
	if (o.username == "") != (o.passwordFile == "") {
		errs = append(errs, errors.New("--username and --password-file go together"))
	}
	return errors.Join(errs...)
}

func (o *brokerOptions) Config() (broker.RunConfig, error) {
	log, err := newLogger(o.logLevel)
	if err != nil {
		return broker.RunConfig{}, err
	}
	cfg := broker.Config{Listen: o.listen, AllowAnonymous: o.allowAnonymous, CertFile: o.cert, KeyFile: o.key, ClientCAFile: o.clientCA, DataDir: o.dataDir}
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
	return broker.RunConfig{Config: cfg, Log: log}, nil
}

func runBroker(ctx context.Context, o brokerOptions) error {
	return run(ctx, &o, broker.Run)
}
