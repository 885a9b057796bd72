package broker

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ning-edge/ning/internal/topology"
)

// TokenUsername is the MQTT username of a client that authenticates with a
// Kubernetes ServiceAccount token as its password.
const TokenUsername = "kubernetes"

// nodeNameExtra is the TokenReview extra naming the node a pod-bound token's
// pod runs on.
const nodeNameExtra = "authentication.kubernetes.io/node-name"

// TokenAuth authenticates clients by their pod's ServiceAccount token (a
// projected token for Audience), through the apiserver's TokenReview: no
// credential to issue, store or rotate, and none that one pod could lend
// another. Identities maps a ServiceAccount
// ("system:serviceaccount:NS:NAME") to its identity name; the name "probe"
// makes the identity probe@SITE, SITE being the site of the node the
// token's pod is bound to (its SiteLabel, as topology.SiteOf reads it), so a
// prober speaks for the site it runs in, and only for it.
type TokenAuth struct {
	Client     kubernetes.Interface
	Audience   string
	Identities map[string]string
	SiteLabel  string
	// CacheFor is how long a reviewed token's identity is reused; zero
	// means one minute.
	CacheFor time.Duration

	mu    sync.Mutex
	cache map[[32]byte]cachedIdentity
}

type cachedIdentity struct {
	id      Identity
	expires time.Time
}

// maxTokenCache bounds the reviewed tokens remembered.
const maxTokenCache = 4096

// validate checks the configuration.
func (a *TokenAuth) validate() error {
	if a.Client == nil || a.Audience == "" {
		return errors.New("token authentication needs a Kubernetes client and an audience")
	}
	for sa, name := range a.Identities {
		if !strings.HasPrefix(sa, "system:serviceaccount:") {
			return fmt.Errorf("token identity %q: want system:serviceaccount:NAMESPACE:NAME", sa)
		}
		if name == "probe" {
			continue
		}
		if _, err := ParseIdentity(name); err != nil {
			return fmt.Errorf("token identity of %s: %w (or probe, for the site of the pod's node)", sa, err)
		}
	}
	return nil
}

// Identify reviews token and returns its identity.
func (a *TokenAuth) Identify(ctx context.Context, token string) (Identity, error) {
	key := sha256.Sum256([]byte(token))
	now := time.Now()
	a.mu.Lock()
	if c, ok := a.cache[key]; ok && now.Before(c.expires) {
		a.mu.Unlock()
		return c.id, nil
	}
	a.mu.Unlock()
	tr, err := a.Client.AuthenticationV1().TokenReviews().Create(ctx, &authv1.TokenReview{
		Spec: authv1.TokenReviewSpec{Token: token, Audiences: []string{a.Audience}}}, metav1.CreateOptions{})
	if err != nil {
		return Identity{}, fmt.Errorf("token review: %w", err)
	}
	if !tr.Status.Authenticated {
		return Identity{}, fmt.Errorf("token not authenticated for audience %q: %s", a.Audience, tr.Status.Error)
	}
	user := tr.Status.User.Username
	name, ok := a.Identities[user]
	if !ok {
		return Identity{}, fmt.Errorf("%s has no MQTT identity", user)
	}
	if name == "probe" {
		nodes := tr.Status.User.Extra[nodeNameExtra]
		if len(nodes) != 1 || nodes[0] == "" {
			return Identity{}, fmt.Errorf("%s: the token is not bound to a pod on a node (no %s)", user, nodeNameExtra)
		}
		n, err := a.Client.CoreV1().Nodes().Get(ctx, nodes[0], metav1.GetOptions{})
		if err != nil {
			return Identity{}, fmt.Errorf("%s: the site of node %s: %w", user, nodes[0], err)
		}
		name = "probe@" + topology.SiteOf(n.Name, n.Labels, a.SiteLabel)
	}
	id, err := ParseIdentity(name)
	if err != nil {
		return Identity{}, err
	}
	cacheFor := a.CacheFor
	if cacheFor <= 0 {
		cacheFor = time.Minute
	}
	a.mu.Lock()
	if a.cache == nil || len(a.cache) >= maxTokenCache {
		a.cache = map[[32]byte]cachedIdentity{}
	}
	a.cache[key] = cachedIdentity{id: id, expires: now.Add(cacheFor)}
	a.mu.Unlock()
	return id, nil
}
