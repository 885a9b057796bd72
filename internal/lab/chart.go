package lab

import (
	"context"
	"fmt"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// The release ning is installed as, and its namespace.
const (
	Release   = "ning"
	Namespace = "ning"
)

// installNing installs deploy/helm/ning with the lab's values through the
// Helm SDK, after the namespace and the MQTT credentials Secret the chart
// expects, and waits for every ning pod to be Ready.
func (l *Lab) installNing(ctx context.Context) error {
	c := l.cp.client
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted"}}}
	if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	sec := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ning-mqtt", Namespace: Namespace},
		StringData: map[string]string{"username": "admin", "password": "ning-lab-password"}}
	if _, err := c.CoreV1().Secrets(Namespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	ch, err := loader.Load(l.cfg.Chart)
	if err != nil {
		return fmt.Errorf("loading the chart %s: %w", l.cfg.Chart, err)
	}
	// Values files are comma-separated; a later one overrides an earlier.
	vals := map[string]any{}
	for _, f := range strings.Split(l.cfg.Values, ",") {
		if f == "" {
			continue
		}
		v, err := chartutil.ReadValuesFile(f)
		if err != nil {
			return fmt.Errorf("lab values: %w", err)
		}
		vals = chartutil.CoalesceTables(v, vals)
	}
	kubeconfig := Kubeconfig
	getter := genericclioptions.NewConfigFlags(false)
	getter.KubeConfig = &kubeconfig
	ns2 := Namespace
	getter.Namespace = &ns2
	cfg := new(action.Configuration)
	if err := cfg.Init(getter, Namespace, "secret", func(format string, v ...any) {
		l.log.Debug(fmt.Sprintf(format, v...))
	}); err != nil {
		return fmt.Errorf("helm: %w", err)
	}
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace = Release, Namespace
	in.Timeout = 2 * time.Minute
	if _, err := in.RunWithContext(ctx, ch, vals); err != nil {
		return fmt.Errorf("helm install %s: %w", l.cfg.Chart, err)
	}
	return waitFor(ctx, "every ning pod Ready", 4*time.Minute, func(ctx context.Context) error {
		pods, err := c.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		var notReady []string
		for _, p := range pods.Items {
			if p.Status.Phase == v1.PodSucceeded {
				continue
			}
			ready := false
			for _, cond := range p.Status.Conditions {
				ready = ready || (cond.Type == v1.PodReady && cond.Status == v1.ConditionTrue)
			}
			if !ready {
				notReady = append(notReady, fmt.Sprintf("%s (%s on %q)", p.Name, podReason(&p), p.Spec.NodeName))
			}
		}
		if len(pods.Items) == 0 {
			return fmt.Errorf("no pods in %s", Namespace)
		}
		if len(notReady) > 0 {
			return fmt.Errorf("not Ready: %s", strings.Join(notReady, ", "))
		}
		return nil
	})
}

// podReason summarises why a pod is not Ready.
func podReason(p *v1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			return w.Reason + ": " + w.Message
		}
		if t := cs.State.Terminated; t != nil {
			return fmt.Sprintf("terminated %s (exit %d)", t.Reason, t.ExitCode)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Status != v1.ConditionTrue && c.Message != "" {
			return c.Message
		}
	}
	return string(p.Status.Phase)
}
