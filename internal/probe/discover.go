package probe

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ning-edge/ning/internal/topology"
)

// Discovery chooses probe targets from the cluster's nodes.
//
// A node's site is the value of its SiteLabel (default
// topology.kubernetes.io/zone); a node without the label is a site of its
// own. By default one representative node per site is probed: among the
// site's Ready nodes with an InternalIP and not being deleted, the one whose
// name sorts first (stable, so successive rounds measure the same path). With
// AllNodes every such node is a target. Nodes of the prober's own site are
// never targets.
type Discovery struct {
	Client    kubernetes.Interface
	SiteLabel string
	AllNodes  bool
	// Self is the prober's node; its site is skipped.
	Self string
	// SelfSite, when set, is the prober's site; otherwise it is Self's site.
	SelfSite string
	Log      *slog.Logger
}

// Site returns the site of node name as the API labels it.
func (d *Discovery) Site(ctx context.Context, name string) (string, error) {
	n, err := d.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading node %s: %w", name, err)
	}
	return topology.SiteOf(n.Name, n.Labels, d.label()), nil
}

func (d *Discovery) label() string {
	if d.SiteLabel == "" {
		return topology.DefaultSiteLabel
	}
	return d.SiteLabel
}

// Targets lists the nodes and picks the targets.
func (d *Discovery) Targets(ctx context.Context) ([]Target, error) {
	list, err := d.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	self := d.SelfSite
	if self == "" {
		for i := range list.Items {
			if n := &list.Items[i]; n.Name == d.Self {
				self = topology.SiteOf(n.Name, n.Labels, d.label())
			}
		}
	}
	ts, skipped := NodeTargets(list.Items, d.label(), self, d.AllNodes)
	if len(skipped) > 0 && d.Log != nil {
		d.Log.Info("nodes not probed", "nodes", skipped)
	}
	return ts, nil
}

// NodeTargets picks targets from nodes (see Discovery); skipped names the
// nodes left out for being not Ready, deleted or without an InternalIP.
func NodeTargets(nodes []v1.Node, siteLabel, selfSite string, all bool) (targets []Target, skipped []string) {
	type cand struct{ site, node, addr string }
	var cands []cand
	for i := range nodes {
		n := &nodes[i]
		site := topology.SiteOf(n.Name, n.Labels, siteLabel)
		if site == selfSite {
			continue
		}
		addr := internalIP(n)
		if addr == "" || !ready(n) || n.DeletionTimestamp != nil {
			skipped = append(skipped, n.Name)
			continue
		}
		cands = append(cands, cand{site, n.Name, addr})
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].site != cands[j].site {
			return cands[i].site < cands[j].site
		}
		return cands[i].node < cands[j].node
	})
	for i, c := range cands {
		if !all && i > 0 && cands[i-1].site == c.site {
			continue
		}
		targets = append(targets, Target{Site: c.site, Node: c.node, Address: c.addr})
	}
	sort.Strings(skipped)
	return targets, skipped
}

func internalIP(n *v1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == v1.NodeInternalIP && a.Address != "" {
			return a.Address
		}
	}
	return ""
}

func ready(n *v1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}
