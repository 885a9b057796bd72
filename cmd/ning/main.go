// Command ning is latency-aware scheduling for Kubernetes edge clusters: one
// binary with a subcommand per component. Named kubectl-ning, it is also a
// kubectl plugin (`kubectl ning status`).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ning-edge/ning/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := cli.NewRootFor(os.Args[0])
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, root.DisplayName()+":", err)
		os.Exit(1)
	}
}
