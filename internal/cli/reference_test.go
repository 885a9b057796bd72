package cli

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite docs/reference/flags.md from the commands")

const flagsDoc = "../../docs/reference/flags.md"

// flagsReference is docs/reference/flags.md: every command's own flags, from
// the cobra commands themselves. kube-scheduler's standard flags, which
// `ning scheduler` also takes, are left out.
func flagsReference() string {
	stock := map[string]bool{}
	schedapp.NewSchedulerCommand().Flags().VisitAll(func(f *pflag.Flag) { stock[f.Name] = true })
	var b bytes.Buffer
	b.WriteString("# Command-line reference\n\nGenerated from the cobra commands by `make docs`; do not edit. `ning X --help` prints the same.\n")
	esc := strings.NewReplacer("|", `\|`, "\n", " ")
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if c.HasParent() {
			fmt.Fprintf(&b, "\n## `%s`\n\n%s\n", c.CommandPath(), c.Short)
			isScheduler := c.CommandPath() == "ning scheduler"
			if isScheduler {
				b.WriteString("\nTakes every standard kube-scheduler flag (`--config`, `--kubeconfig`, `--leader-elect`, `--v`, ...; see `ning scheduler --help`) and these:\n")
			}
			rows := 0
			c.LocalFlags().VisitAll(func(f *pflag.Flag) {
				if f.Hidden || f.Deprecated != "" || (isScheduler && stock[f.Name]) || f.Name == "help" {
					return
				}
				if rows == 0 {
					b.WriteString("\n| flag | default | meaning |\n|---|---|---|\n")
				}
				rows++
				name := "--" + f.Name
				if f.Shorthand != "" {
					name = "-" + f.Shorthand + ", " + name
				}
				def := "`" + esc.Replace(f.DefValue) + "`"
				if f.DefValue == "" {
					def = ""
				}
				if f.Name == "node" {
					def = "`$NODE_NAME`, else the host name" // differs per machine
				}
				fmt.Fprintf(&b, "| `%s` | %s | %s |\n", name, def, esc.Replace(f.Usage))
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRoot())
	return b.String()
}

// TestFlagsReference keeps docs/reference/flags.md equal to the commands'
// flags (go test ./internal/cli -run TestFlagsReference -update-docs, or
// make docs, rewrites it).
func TestFlagsReference(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	t.Setenv("KUBECONFIG", "")
	want := flagsReference()
	if *updateDocs {
		if err := os.WriteFile(flagsDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(flagsDoc)
	if err != nil {
		t.Fatalf("%v (run make docs)", err)
	}
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Fatalf("%s is out of date; run make docs (-want +got):\n%s", flagsDoc, diff)
	}
}
