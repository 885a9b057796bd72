package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ning-edge/ning/internal/logging"
)

// componentOptions is what each component's Options type in this package
// is, in kube-scheduler's style (cmd/kube-scheduler/app/options): AddFlags
// registers its flags, Validate checks them all without touching a file or
// the network and returns every error (joined, each naming its flag), and
// Config builds the component's configuration (reading files, building
// clients). A command does only that, then calls the component's Run.
type componentOptions[C any] interface {
	AddFlags(*pflag.FlagSet)
	Validate() error
	Config() (C, error)
}

// run validates o, builds the component's configuration and runs it.
func run[C any](ctx context.Context, o componentOptions[C], component func(context.Context, C) error) error {
	if err := o.Validate(); err != nil {
		return err
	}
	c, err := o.Config()
	if err != nil {
		return err
	}
	return component(ctx, c)
}

// signalContext is a command's context, ended by SIGINT or SIGTERM.
func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
}

// validLogLevel checks a --log-level value.
func validLogLevel(level string) error {
	_, err := logging.ParseLevel(level)
	return err
}
