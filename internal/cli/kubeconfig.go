package cli

import (
	"fmt"

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

// restConfig applies the rule of kubeconfigHelp.
func restConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	return cfg, nil
}

// kubeClient builds a clientset by the rule of kubeconfigHelp.
func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return c, nil
}
