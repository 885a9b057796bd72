package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeconfigHelp is the one --kubeconfig rule of every ning command.
const kubeconfigHelp = "kubeconfig `file`; without it $KUBECONFIG, then ~/.kube/config, then the in-cluster service account (the same rule in every ning command)"

// addKubeconfigFlag registers --kubeconfig with the one rule.
func addKubeconfigFlag(fs *pflag.FlagSet, p *string) {
	fs.StringVar(p, "kubeconfig", "", kubeconfigHelp)
}

// kubeFlags are kubectl's connection flags, for the commands a person runs
// against a cluster (also as `kubectl ning`): --kubeconfig by the one rule,
// --context, and -n/--namespace with -A/--all-namespaces. They are
// clientcmd's own loading rules and overrides, so $KUBECONFIG's list of files
// merges and a context's namespace applies as in kubectl. (cli-runtime's
// ConfigFlags wraps the same two, with some twenty flags and a discovery
// cache these commands have no use for.)
type kubeFlags struct {
	kubeconfig    string
	overrides     clientcmd.ConfigOverrides
	allNamespaces bool
}

// AddFlags registers --kubeconfig, --context, -n/--namespace and
// -A/--all-namespaces, named and described as in kubectl.
func (k *kubeFlags) AddFlags(fs *pflag.FlagSet) {
	addKubeconfigFlag(fs, &k.kubeconfig)
	names := clientcmd.RecommendedConfigOverrideFlags("")
	names.CurrentContext.Description = "the kubeconfig context to use (default: its current-context)"
	names.CurrentContext.BindStringFlag(fs, &k.overrides.CurrentContext)
	ns := names.ContextOverrideFlags.Namespace
	ns.Description = "show only this namespace (default: the kubeconfig context's namespace if it sets one, else every namespace)"
	ns.BindStringFlag(fs, &k.overrides.Context.Namespace)
	fs.BoolVarP(&k.allNamespaces, "all-namespaces", "A", false, "show every namespace, whatever the context's namespace")
}

// Validate checks the flags without reading a file.
func (k *kubeFlags) Validate() error {
	if k.allNamespaces && k.overrides.Context.Namespace != "" {
		return fmt.Errorf("--namespace %q and --all-namespaces: give one", k.overrides.Context.Namespace)
	}
	return nil
}

func (k *kubeFlags) clientConfig() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	overrides := k.overrides
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &overrides)
}

func (k *kubeFlags) restConfig() (*rest.Config, error) {
	cfg, err := k.clientConfig().ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	return cfg, nil
}

// namespace is the namespace the command shows, "" for all: -n, else none
// with -A, else the context's namespace when the kubeconfig sets one (as
// kubectl), else all (where kubectl would take "default": ning's view is of
// the cluster).
func (k *kubeFlags) namespace() (string, error) {
	if k.allNamespaces || k.overrides.Context.Namespace != "" {
		return k.overrides.Context.Namespace, nil
	}
	raw, err := k.clientConfig().RawConfig()
	if err != nil {
		return "", fmt.Errorf("--kubeconfig: %w", err)
	}
	name := k.overrides.CurrentContext
	if name == "" {
		name = raw.CurrentContext
	}
	if c, ok := raw.Contexts[name]; ok {
		return c.Namespace, nil
	}
	return "", nil
}

// kubeClient builds a clientset by the rule of kubeconfigHelp.
func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	k := kubeFlags{kubeconfig: kubeconfig}
	return k.client()
}

// client builds a clientset from the flags.
func (k *kubeFlags) client() (kubernetes.Interface, error) {
	cfg, err := k.restConfig()
	if err != nil {
		return nil, err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return c, nil
}

// kubeconfigFile is the file the rule of kubeconfigHelp picks, for a
// component that takes a file name rather than a client (kube-scheduler's
// clientConnection.kubeconfig): the flag, else the first file of
// $KUBECONFIG that exists, else ~/.kube/config if it exists, else ""
// (in-cluster).
func kubeconfigFile(flag string) string {
	if flag != "" {
		return flag
	}
	for _, f := range filepath.SplitList(os.Getenv(clientcmd.RecommendedConfigPathEnvVar)) {
		if _, err := os.Stat(f); f != "" && err == nil {
			return f
		}
	}
	if _, err := os.Stat(clientcmd.RecommendedHomeFile); err == nil {
		return clientcmd.RecommendedHomeFile
	}
	return ""
}
