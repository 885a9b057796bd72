package chart

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ning-edge/ning/internal/discover"
)

func probeArgs(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	return discoverArgs(t, objs)["--probe-arg"]
}

// TestMQTTIdentities: with the defaults (mqtt.auth=token) every component
// that talks MQTT authenticates with its own pod's projected ServiceAccount
// token for the broker's audience, no pod mounts the shared credentials
// Secret, and the broker maps each of those accounts (and only those) to
// its identity: the prober's and the probe Job's to probe (the site of
// their node), discovery's to discover, the readers to theirs.
func TestMQTTIdentities(t *testing.T) {
	objs := objects(t, mustRender(t, map[string]any{"extender": map[string]any{"enabled": true}}))
	var brokerArgs []string
	type user struct{ name, sa string }
	var users []user
	check := func(name string, spec v1.PodSpec) {
		for _, vol := range spec.Volumes {
			if vol.Secret != nil && vol.Secret.SecretName == "ning-mqtt" {
				t.Errorf("%s mounts the shared MQTT credentials Secret", name)
			}
		}
		for _, c := range spec.Containers {
			if slices.Contains(c.Args, "broker") {
				brokerArgs = c.Args
				continue
			}
			if !slices.Contains(c.Args, "--mqtt-username=kubernetes") {
				continue
			}
			users = append(users, user{name, spec.ServiceAccountName})
			var token *v1.ServiceAccountTokenProjection
			for _, vol := range spec.Volumes {
				if vol.Name == "mqtt-credentials" && vol.Projected != nil && len(vol.Projected.Sources) == 1 {
					token = vol.Projected.Sources[0].ServiceAccountToken
				}
			}
			if token == nil || token.Audience != "ning-broker" {
				t.Errorf("%s: no projected token for audience ning-broker (%+v)", name, token)
			}
		}
	}
	for _, u := range objs {
		switch u.GetKind() {
		case "Deployment":
			var d appsv1.Deployment
			fromUnstructured(t, u, &d)
			check(u.GetName(), d.Spec.Template.Spec)
		case "DaemonSet":
			var d appsv1.DaemonSet
			fromUnstructured(t, u, &d)
			check(u.GetName(), d.Spec.Template.Spec)
		case "ConfigMap":
			if strings.HasSuffix(u.GetName(), "-probe-job") {
				tmpl, err := discover.ParsePodTemplate([]byte(configData(t, u, "template.yaml")))
				if err != nil {
					t.Fatal(err)
				}
				// discovery sets the account and these arguments on the Job.
				tmpl.Spec.ServiceAccountName = "ning-probe-job"
				tmpl.Spec.Containers[0].Args = append(tmpl.Spec.Containers[0].Args, probeArgs(t, objs)...)
				check("probe Job", tmpl.Spec)
			}
		}
	}
	want := map[string]string{"ning-prober": "probe", "ning-probe-job": "probe", "ning-discover": "discover",
		"ning-scheduler": "scheduler", "ning-rescheduler": "rescheduler", "ning-extender": "extender"}
	got := map[string]string{}
	for _, a := range brokerArgs {
		if v, ok := strings.CutPrefix(a, "--token-identity=system:serviceaccount:"+namespace+":"); ok {
			sa, id, _ := strings.Cut(v, "=")
			got[sa] = id
		}
	}
	if len(got) != len(want) {
		t.Errorf("broker token identities %v, want %v", got, want)
	}
	for sa, id := range want {
		if got[sa] != id {
			t.Errorf("broker maps %s to %q, want %q", sa, got[sa], id)
		}
	}
	if len(users) < 5 {
		t.Errorf("only %d MQTT clients found: %v", len(users), users)
	}
	for _, u := range users {
		if _, ok := want[u.sa]; !ok {
			t.Errorf("%s talks MQTT as ServiceAccount %q, which the broker gives no identity", u.name, u.sa)
		}
	}
}
