package topology

// DefaultSiteLabel is the node label whose value names a node's site.
const DefaultSiteLabel = "topology.kubernetes.io/zone"

// SiteOf returns the site of a node: the value of its label key, or, when the
// node does not carry the label (or its value is empty), the node's own name,
// so that an unlabelled node is a site of its own.
func SiteOf(nodeName string, labels map[string]string, key string) string {
	if v := labels[key]; v != "" {
		return v
	}
	return nodeName
}
