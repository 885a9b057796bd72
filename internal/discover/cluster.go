package discover

import (
	"context"
	"fmt"
	"sort"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/ning-edge/ning/internal/topology"
)

// DefaultGatewaySelector selects Traefik's pods (the official chart's label).
const DefaultGatewaySelector = "app.kubernetes.io/name=traefik"

// Node is one cluster node as discovery sees it.
type Node struct {
	Name string
	Site string
	// InternalIP is the node's first InternalIP address, empty if it has none.
	InternalIP string
	// Labelled is false when the node lacks the site label and is a site of
	// its own (then Site == Name).
	Labelled bool
	// Gateways are the gateway pods ("namespace/name") running on the node.
	Gateways []string
}

// Cluster is the node-to-site mapping and where the gateways run.
type Cluster struct {
	// SiteLabel is the node label that names a node's site.
	SiteLabel string
	Nodes     map[string]*Node
	// Sites maps each site to its node names, sorted.
	Sites map[string][]string
	// GatewaySites are the sites with at least one gateway pod, sorted.
	GatewaySites []string
}

// ClusterOptions says how to find gateways and sites.
type ClusterOptions struct {
	// GatewaySelector is a label selector for gateway pods; empty means
	// DefaultGatewaySelector.
	GatewaySelector string
	// GatewayNamespace limits the pod search; empty means every namespace.
	GatewayNamespace string
	// SiteLabel is the node label naming the site; empty means
	// topology.DefaultSiteLabel.
	SiteLabel string
}

// LoadCluster lists nodes and gateway pods and maps them to sites.
func LoadCluster(ctx context.Context, c kubernetes.Interface, o ClusterOptions) (*Cluster, error) {
	if o.GatewaySelector == "" {
		o.GatewaySelector = DefaultGatewaySelector
	}
	if o.SiteLabel == "" {
		o.SiteLabel = topology.DefaultSiteLabel
	}
	if _, err := labels.Parse(o.GatewaySelector); err != nil {
		return nil, fmt.Errorf("gateway selector %q: %w", o.GatewaySelector, err)
	}
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	pods, err := c.CoreV1().Pods(o.GatewayNamespace).List(ctx, metav1.ListOptions{LabelSelector: o.GatewaySelector})
	if err != nil {
		return nil, fmt.Errorf("listing gateway pods (%s): %w", o.GatewaySelector, err)
	}
	return BuildCluster(nodes.Items, pods.Items, o.SiteLabel), nil
}

// BuildCluster maps nodes to sites (topology.SiteOf) and gateway pods to
// their nodes. Pods not yet bound to a node, or finished, are ignored.
func BuildCluster(nodes []v1.Node, gateways []v1.Pod, siteLabel string) *Cluster {
	c := &Cluster{SiteLabel: siteLabel, Nodes: map[string]*Node{}, Sites: map[string][]string{}}
	for i := range nodes {
		n := &nodes[i]
		site := topology.SiteOf(n.Name, n.Labels, siteLabel)
		node := &Node{Name: n.Name, Site: site, Labelled: n.Labels[siteLabel] != ""}
		for _, a := range n.Status.Addresses {
			if a.Type == v1.NodeInternalIP {
				node.InternalIP = a.Address
				break
			}
		}
		c.Nodes[n.Name] = node
		c.Sites[site] = append(c.Sites[site], n.Name)
	}
	for _, ns := range c.Sites {
		sort.Strings(ns)
	}
	gw := map[string]bool{}
	for i := range gateways {
		p := &gateways[i]
		if p.Spec.NodeName == "" || p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed || p.DeletionTimestamp != nil {
			continue
		}
		n := c.Nodes[p.Spec.NodeName]
		if n == nil {
			continue
		}
		n.Gateways = append(n.Gateways, p.Namespace+"/"+p.Name)
		gw[n.Site] = true
	}
	for s := range gw {
		c.GatewaySites = append(c.GatewaySites, s)
	}
	sort.Strings(c.GatewaySites)
	return c
}

// SiteOfNode returns the site of a node the cluster knows.
func (c *Cluster) SiteOfNode(node string) (string, bool) {
	n := c.Nodes[node]
	if n == nil {
		return "", false
	}
	return n.Site, true
}

// Representative returns the node that stands for a site as a probe target:
// the first (by name) gateway node with an InternalIP, else the first node
// with an InternalIP.
func (c *Cluster) Representative(site string) (*Node, bool) {
	var fallback *Node
	for _, name := range c.Sites[site] {
		n := c.Nodes[name]
		if n.InternalIP == "" {
			continue
		}
		if len(n.Gateways) > 0 {
			return n, true
		}
		if fallback == nil {
			fallback = n
		}
	}
	return fallback, fallback != nil
}

// SiteNames returns every site, sorted.
func (c *Cluster) SiteNames() []string {
	out := make([]string, 0, len(c.Sites))
	for s := range c.Sites {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
