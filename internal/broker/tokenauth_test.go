package broker

import (
	"context"
	"testing"

	authv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ning-edge/ning/internal/testcluster"
	"github.com/ning-edge/ning/internal/topology"
)

// podToken creates ServiceAccount sa, a pod of it on node, and a token
// bound to that pod for audience, as the kubelet projects it.
func podToken(t *testing.T, c kubernetes.Interface, sa, node, audience string) string {
	t.Helper()
	ctx := t.Context()
	if _, err := c.CoreV1().ServiceAccounts("ning").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := c.CoreV1().Pods("ning").Create(ctx, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: sa + "-" + node},
		Spec: v1.PodSpec{NodeName: node, ServiceAccountName: sa, Containers: []v1.Container{{Name: "c", Image: "x"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	exp := int64(600)
	tr, err := c.CoreV1().ServiceAccounts("ning").CreateToken(ctx, sa, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		Audiences: []string{audience}, ExpirationSeconds: &exp,
		BoundObjectRef: &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// TestTokenIdentities: with a real apiserver, a prober pod's bound
// ServiceAccount token makes it probe@<its node's site>: it may publish only
// that site's reports. The scheduler's token makes it the scheduler. A token
// for another audience, or of an account with no identity, is refused.
func TestTokenIdentities(t *testing.T) {
	cp := testcluster.Start(t)
	c := cp.Client
	ctx := context.Background()
	if _, err := c.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ning"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []testcluster.Node{{Name: "b-1", Site: "b"}, {Name: "a-1", Site: "a"}} {
		if _, err := testcluster.CreateReadyNode(ctx, c, n); err != nil {
			t.Fatal(err)
		}
	}
	probeB := podToken(t, c, "ning-prober", "b-1", "ning-broker")
	sched := podToken(t, c, "ning-scheduler", "a-1", "ning-broker")
	other := podToken(t, c, "someone", "a-1", "ning-broker")
	wrongAudience := podToken(t, c, "ning-other-audience", "a-1", "kubernetes")

	b, err := New(Config{Listen: "127.0.0.1:0", Tokens: &TokenAuth{Client: c, Audience: "ning-broker", SiteLabel: topology.DefaultSiteLabel,
		Identities: map[string]string{
			"system:serviceaccount:ning:ning-prober":         "probe",
			"system:serviceaccount:ning:ning-scheduler":      "scheduler",
			"system:serviceaccount:ning:ning-other-audience": "scheduler",
		}}}, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	prober, code := dial(t, b.Addr(), "p", TokenUsername, probeB)
	if code != codeOK {
		t.Fatalf("prober on b-1: CONNACK %#x", code)
	}
	if c := prober.publish(t, "ning/v1/latency/b", []byte("r")); c != codeOK {
		t.Errorf("prober on b-1 publishing for b: %#x", c)
	}
	if c := prober.publish(t, "ning/v1/latency/a", []byte("r")); c != codeNotAuthorized {
		t.Errorf("prober on b-1 publishing for a: %#x, want %#x", c, codeNotAuthorized)
	}
	s, code := dial(t, b.Addr(), "s", TokenUsername, sched)
	if code != codeOK {
		t.Fatalf("scheduler: CONNACK %#x", code)
	}
	if c := s.subscribe(t, "ning/v1/#"); c != codeGrantedQoS1 {
		t.Errorf("scheduler subscribing: %#x", c)
	}
	if c := s.publish(t, "ning/v1/latency/a", []byte("r")); c != codeNotAuthorized {
		t.Errorf("scheduler publishing: %#x, want %#x", c, codeNotAuthorized)
	}
	for name, tok := range map[string]string{"no identity": other, "wrong audience": wrongAudience, "garbage": "x.y.z"} {
		if _, code := dial(t, b.Addr(), "x", TokenUsername, tok); code != codeBadCredentials {
			t.Errorf("%s: CONNACK %#x, want %#x", name, code, codeBadCredentials)
		}
	}
}
