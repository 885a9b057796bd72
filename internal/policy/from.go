package policy

import (
	"fmt"

	"github.com/ning-edge/ning/internal/placement"
)

// Locator says where nodes, sites and pods are, from a component's caches.
type Locator interface {
	// SiteOfNode returns the site of the node called name.
	SiteOfNode(name string) (site string, ok bool)
	// HasSite reports whether a site of that name has a node.
	HasSite(site string) bool
	// NodeOfPod returns the node the pod namespace/name is bound to: found
	// is false when there is no such pod, node is "" when it is not bound.
	NodeOfPod(namespace, name string) (node string, found bool)
}

// UnresolvedError is a delay constraint whose <from> names nothing yet. The
// node, site or pod may still appear, so a scheduler treats it as resolvable
// (Unschedulable) and a rescheduler as "the replacement fits nowhere".
type UnresolvedError struct {
	Constraint placement.Constraint
	// Why says what is missing, for a person.
	Why string
}

func (e *UnresolvedError) Error() string { return fmt.Sprintf("%s: %s", e.Constraint, e.Why) }

// ResolveFrom finds the site of a constraint's <from>, in this order: a node
// of that name, else a site of that name, else a pod of that name in the
// pod's namespace (by the node it is bound to).
func ResolveFrom(c placement.Constraint, namespace string, loc Locator) (string, error) {
	from := c.From
	if site, ok := loc.SiteOfNode(from); ok {
		return site, nil
	}
	if loc.HasSite(from) {
		return from, nil
	}
	node, found := loc.NodeOfPod(namespace, from)
	switch {
	case !found:
		return "", &UnresolvedError{Constraint: c, Why: fmt.Sprintf("no node, site or pod named %s", from)}
	case node == "":
		return "", &UnresolvedError{Constraint: c, Why: fmt.Sprintf("pod %s/%s is not on a node yet", namespace, from)}
	}
	site, ok := loc.SiteOfNode(node)
	if !ok {
		return "", &UnresolvedError{Constraint: c, Why: fmt.Sprintf("pod %s/%s runs on node %s, which is not known", namespace, from, node)}
	}
	return site, nil
}

// Resolve resolves every constraint; the error is the first
// *UnresolvedError.
func Resolve(cs []placement.Constraint, namespace string, loc Locator) ([]placement.Resolved, error) {
	out := make([]placement.Resolved, 0, len(cs))
	for _, c := range cs {
		site, err := ResolveFrom(c, namespace, loc)
		if err != nil {
			return nil, err
		}
		out = append(out, placement.Resolved{Constraint: c, FromSite: site})
	}
	return out, nil
}
