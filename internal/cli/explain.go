package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/explain"
)

// profileOptions are the scheduler profile's arguments explain reasons
// with; ning explain and ning dashboard (its explain pages) share them.
type profileOptions struct {
	unknownRTT string
}

func (o *profileOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.unknownRTT, "unknown-rtt", string(configv1alpha1.FailClosed), "the scheduler's NetworkLatency unknownRTT: FailClosed or FailOpen")
}

func (o *profileOptions) Validate() error {
	if o.unknownRTT != string(configv1alpha1.FailClosed) && o.unknownRTT != string(configv1alpha1.FailOpen) {
		return fmt.Errorf("--unknown-rtt %q: want FailClosed or FailOpen", o.unknownRTT)
	}
	return nil
}

// Args are explain's arguments from the flags.
func (o *profileOptions) Args() explain.Args {
	return explain.Args{UnknownRTT: configv1alpha1.UnknownRTTPolicy(o.unknownRTT)}
}

// explainOptions are ning status's flags (onceOptions) and the scheduler's
// profile, with the object from the arguments.
type explainOptions struct {
	once       onceOptions
	profile    profileOptions
	kind, name string
}

func (o *explainOptions) AddFlags(fs *pflag.FlagSet) {
	o.once.AddFlags(fs)
	o.profile.AddFlags(fs)
}

// kinds are the kinds explain takes, by the names kubectl takes.
var kinds = map[string]string{
	"pod": explain.KindPod, "pods": explain.KindPod, "po": explain.KindPod,
	"deployment": explain.KindDeployment, "deployments": explain.KindDeployment, "deploy": explain.KindDeployment,
}

func (o *explainOptions) Validate() error {
	errs := []error{o.once.Validate(), o.profile.Validate()}
	if _, ok := kinds[strings.ToLower(o.kind)]; !ok {
		errs = append(errs, fmt.Errorf("kind %q: want pod or deployment", o.kind))
	}
	if ns, name, ok := strings.Cut(o.name, "/"); o.name == "" || (ok && (ns == "" || name == "" || strings.Contains(name, "/"))) {
		errs = append(errs, fmt.Errorf("%q: want NAMESPACE/NAME, or NAME with -n or a context's namespace", o.name))
	}
	if o.once.view.kube.allNamespaces {
		errs = append(errs, errors.New("--all-namespaces: explain names one object; give NAMESPACE/NAME or -n"))
	}
	return errors.Join(errs...)
}

func (o *explainOptions) Config() (explain.Config, error) {
	v, _, err := o.once.view.Config()
	if err != nil {
		return explain.Config{}, err
	}
	ns, name, _ := strings.Cut(inNamespace(v.Options.Namespace, o.name), "/")
	if name == "" {
		ns, name = "", ns
	}
	return explain.Config{View: v, Args: o.profile.Args(),
		Kind: kinds[strings.ToLower(o.kind)], Namespace: ns, Name: name,
		Timeout: o.once.timeout, Settle: o.once.settle, Output: o.once.output, Out: o.once.out}, nil
}

func newExplainCommand() *cobra.Command {
	o := &explainOptions{}
	cmd := &cobra.Command{
		Use:   "explain (pod|deployment) NAMESPACE/NAME [--kubeconfig FILE] [-o table|json] [--latency-file FILE] [--mqtt ...]",
		Short: "Say why a pod sits where it does, or is pending, and where its workload belongs",
		Long: `explain lists the cluster once, reads ning's data sources (the flags of
ning status), and tells, for a pod or a Deployment's next replica:

  - the pod's delay constraints (delay_<from> labels), each site's verdict
    with its reason, and the RTT and its age behind it (static, measured N
    ago, stale, never measured);
  - each ning plugin's score per site and node: TrafficLatency's raw score
    (the marginal gain of one more replica there) and its 0..100 score
    among the candidate nodes, NodeLoad's, CloudFallback's, and
    kube-scheduler's default score plugins' (TaintToleration, NodeAffinity,
    NodeResourcesFit, InterPodAffinity, NodeResourcesBalancedAllocation,
    ImageLocality), with their weights and the weighted total;
  - the planner's placement for the workload beside the actual one, and the
    traffic-weighted mean RTT of each;
  - the site chosen (or the pod's own) and why, and why the runner-up lost.

Every verdict, score and plan comes from the calls the scheduler plugins
and the rescheduler make (internal/policy, internal/placement), with ning's
default profile: weights 10, 2 and 1000, NodeLoad's defaults, and
--unknown-rtt as the profile's unknownRTT. The default score plugins run
themselves, with their default arguments and weights, on a snapshot of the
cluster's nodes and bound pods; of the default filters only this one is
applied: a node is schedulable when it is Ready, not cordoned and has no
taint the pod does not tolerate.

NAME alone is in the namespace of -n or the context. -o json prints the same
as JSON. Installed or linked as kubectl-ning, this is kubectl ning explain.`,
		Example: `  ning explain pod shop/web-6d4f8-x2k9q --latency-file examples/edge-city.yaml
  ning explain deployment shop/web --mqtt --broker mqtt://broker:1883 -o json
  kubectl ning explain deploy web --context edge -n shop`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext(cmd)
			defer stop()
			o.kind, o.name = args[0], args[1]
			o.once.out = cmd.OutOrStdout()
			return run(ctx, o, explain.Run)
		},
	}
	o.AddFlags(cmd.Flags())
	// explain names one object: -A is refused (Validate), so not offered,
	// and -n has no "every namespace" to fall back on.
	_ = cmd.Flags().MarkHidden("all-namespaces")
	if f := cmd.Flags().Lookup("namespace"); f != nil {
		f.Usage = "the namespace of a NAME given without one (default: the context's)"
	}
	return cmd
}
