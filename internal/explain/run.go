package explain

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/utils/clock"

	"github.com/ning-edge/ning/internal/dashboard"
	"github.com/ning-edge/ning/internal/source"
)

// Config is what `ning explain` runs with; the command builds it from the
// flags it shares with `ning status` and calls Run.
type Config struct {
	// View is the cluster, the store and its sources, as ning status has
	// them (its Options give the site label, the scheduler name and the
	// per-replica rate).
	View dashboard.View
	// Args are the scheduler's plugin arguments to explain with.
	Args Args
	// Kind is KindPod or KindDeployment; Namespace and Name name it.
	Kind, Namespace, Name string
	// Timeout bounds listing the cluster; Settle is how long MQTT reports
	// are collected first (0: none).
	Timeout, Settle time.Duration
	// Output is "table" or "json".
	Output string
	Out    io.Writer
	// Clock tells the data's age (the real clock when nil).
	Clock clock.PassiveClock
}

// Run reads the sources, lists the cluster once and prints the explanation.
func Run(ctx context.Context, c Config) error {
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.View.Client == nil || c.View.Store == nil {
		return fmt.Errorf("explain: a Kubernetes client and a topology store are required")
	}
	if v := c.View.Options.PerReplicaRPS; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fmt.Errorf("explain: per-replica rate %v: want a finite number of 0 or more", v)
	}
	if c.Namespace == "" {
		return fmt.Errorf("explain %s %s: no namespace: give NAMESPACE/NAME, -n NAMESPACE or a context with a namespace", c.Kind, c.Name)
	}
	stop, err := source.Start(ctx, c.View.Sources, c.View.Store)
	if err != nil {
		return err
	}
	defer func() { _ = stop() }() // the data is read; a failed close changes nothing in it
	if c.View.Sources.MQTT != nil && c.Settle > 0 {
		select {
		case <-time.After(c.Settle):
		case <-ctx.Done():
			return fmt.Errorf("waiting for MQTT reports: %w", context.Cause(ctx))
		}
	}
	e, err := Explain(ctx, c)
	if err != nil {
		return err
	}
	if c.Output == "json" {
		enc := json.NewEncoder(c.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("writing JSON: %w", err)
		}
		return nil
	}
	return WriteTable(c.Out, e)
}

// Explain lists the cluster once and explains c's object from the store as
// it is, its sources already running (Run starts them; the dashboard's
// workload page in ning demo calls this with the demo's store).
func Explain(ctx context.Context, c Config) (*Explanation, error) {
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	in, err := list(ctx, c)
	if err != nil {
		return nil, err
	}
	a := c.Args
	a.SiteLabel, a.PerReplicaRPS = c.View.Options.SiteLabel, c.View.Options.PerReplicaRPS
	return build(ctx, in, c.View.Store, a)
}

// list reads the nodes, the namespace's pods and, for a pod, its Events.
func list(ctx context.Context, c Config) (inputs, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.Timeout, fmt.Errorf("the cluster was not listed within --timeout %v", c.Timeout))
	defer cancel()
	cause := func(what string, err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("listing %s: %w", what, context.Cause(ctx))
		}
		return fmt.Errorf("listing %s: %w", what, err)
	}
	in := inputs{kind: c.Kind, namespace: c.Namespace, name: c.Name, schedulerName: c.View.Options.SchedulerName, now: c.Clock.Now()}
	if in.schedulerName == "" {
		in.schedulerName = dashboard.DefaultSchedulerName
	}
	client := c.View.Client.CoreV1()
	nodes, err := client.Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return inputs{}, cause("nodes", err)
	}
	for i := range nodes.Items {
		in.nodes = append(in.nodes, &nodes.Items[i])
	}
	// Every pod: the namespace's for the workload and a delay_<from>'s pod
	// (it may be anyone's), all bound ones for the default plugins'
	// snapshot (resources, images, affinity).
	in.client = c.View.Client
	all, err := client.Pods("").List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) {
		// Allowed one namespace only: the default plugins go unscored.
		in.client, in.defaultsOff = nil, "not scored: listing the pods of every namespace is forbidden ("+err.Error()+")"
		all, err = client.Pods(c.Namespace).List(ctx, metav1.ListOptions{})
	}
	if err != nil {
		return inputs{}, cause("pods", err)
	}
	for i := range all.Items {
		p := &all.Items[i]
		in.allPods = append(in.allPods, p)
		if p.Namespace == c.Namespace {
			in.pods = append(in.pods, p)
		}
	}
	if c.Kind == KindPod {
		events, err := client.Events(c.Namespace).List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", c.Name).String(),
		})
		if err != nil {
			return inputs{}, cause("events", err)
		}
		for i := range events.Items {
			in.events = append(in.events, &events.Items[i])
		}
	}
	return in, nil
}

// Pages are the dashboard's workload pages (dashboard.Explainer): ning
// explain's table for a Deployment or pod, from View's store as it is (its
// sources are fed by whoever owns the store: ning dashboard, or ning demo).
type Pages struct {
	// View is the cluster and the store; Args the profile to explain with.
	View dashboard.View
	Args Args
	// Timeout bounds listing the cluster for one page.
	Timeout time.Duration
}

// PageTimeout is how long one explain page may take to list the cluster.
const PageTimeout = 10 * time.Second

// Explain returns ning explain's table for the object (the dashboard's kinds
// are explain's).
func (p Pages) Explain(ctx context.Context, kind, namespace, name string) (string, error) {
	if p.Timeout <= 0 {
		p.Timeout = PageTimeout
	}
	e, err := Explain(ctx, Config{View: p.View, Args: p.Args, Kind: kind, Namespace: namespace, Name: name, Timeout: p.Timeout})
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := WriteTable(&b, e); err != nil {
		return "", err
	}
	return b.String(), nil
}

var _ dashboard.Explainer = Pages{}
