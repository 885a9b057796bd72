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
