package discover

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/ning-edge/ning/internal/topology"
)

const probeTemplate = `
metadata:
  labels: {team: edge, app.kubernetes.io/component: not-ning}
  annotations: {note: kept}
spec:
  restartPolicy: OnFailure
  serviceAccountName: from-template
  securityContext:
    runAsNonRoot: true
    sysctls: [{name: net.ipv4.ping_group_range, value: "0 2147483647"}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms: [{matchExpressions: [{key: elsewhere, operator: Exists}]}]
      preferredDuringSchedulingIgnoredDuringExecution:
        - {weight: 1, preference: {matchExpressions: [{key: fast, operator: Exists}]}}
  tolerations: [{key: edge, operator: Exists}]
  volumes: [{name: mqtt, secret: {secretName: ning-mqtt}}]
  containers:
    - name: whatever
      args: [ignored]
      env:
        - {name: NODE_NAME, value: wrong}
        - {name: NING_MQTT_PASSWORD, valueFrom: {secretKeyRef: {name: ning-mqtt, key: password}}}
      securityContext: {readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumeMounts: [{name: mqtt, mountPath: /etc/ning/mqtt, readOnly: true}]
`

// TestProbeJobFromTemplate: the template supplies everything but the
// placement, the arguments, the identity labels and NODE_NAME, which stay
// ning's, so a template cannot send the probe to the wrong site.
func TestProbeJobFromTemplate(t *testing.T) {
	tmpl, err := ParsePodTemplate([]byte(probeTemplate))
	if err != nil {
		t.Fatal(err)
	}
	c := BuildCluster([]corev1.Node{mkNode("a1", "a", "10.0.0.1"), mkNode("b1", "b", "10.0.1.1")},
		[]corev1.Pod{mkGateway("g", "a1")}, topology.DefaultSiteLabel)
	plain, _ := BuildProbeJob(Decision{Busiest: "a", At: t0}, c, JobOptions{SiteLabel: topology.DefaultSiteLabel, Image: "ning:test"})
	j, note := BuildProbeJob(Decision{Busiest: "a", At: t0}, c, JobOptions{SiteLabel: topology.DefaultSiteLabel, Image: "ning:test", Template: tmpl})
	if j == nil {
		t.Fatalf("no job: %s", note)
	}
	ps := j.Spec.Template.Spec
	if diff := cmp.Diff(plain.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution,
		ps.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution); diff != "" {
		t.Errorf("required node affinity is not ning's (-want +got):\n%s", diff)
	}
	if ps.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution == nil {
		t.Error("the template's preferred affinity was dropped")
	}
	if ps.RestartPolicy != corev1.RestartPolicyNever || ps.ServiceAccountName != "from-template" {
		t.Errorf("restart policy %q, service account %q", ps.RestartPolicy, ps.ServiceAccountName)
	}
	ctr := ps.Containers[0]
	if ctr.Name != "probe" || ctr.Image != "ning:test" {
		t.Errorf("container %q image %q, want probe and ning:test", ctr.Name, ctr.Image)
	}
	if diff := cmp.Diff(plain.Spec.Template.Spec.Containers[0].Args, ctr.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if len(ctr.Env) != 2 || ctr.Env[0].ValueFrom == nil || ctr.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" || ctr.Env[1].Name != "NING_MQTT_PASSWORD" {
		t.Errorf("env %+v: want NODE_NAME from spec.nodeName, then the template's password", ctr.Env)
	}
	if ctr.SecurityContext.Capabilities.Add != nil || !*ctr.SecurityContext.ReadOnlyRootFilesystem || len(ctr.VolumeMounts) != 1 {
		t.Errorf("the template's security context or mounts were not kept: %+v", ctr)
	}
	if len(ps.SecurityContext.Sysctls) != 1 || len(ps.Tolerations) != 1 || len(ps.Volumes) != 1 {
		t.Error("the template's pod security context, tolerations or volumes were not kept")
	}
	l := j.Spec.Template.Labels
	if l["team"] != "edge" || l[LabelComponent] != ComponentValue || l[LabelManagedBy] != ManagedByValue || j.Spec.Template.Annotations["note"] != "kept" {
		t.Errorf("labels %v annotations %v", l, j.Spec.Template.Annotations)
	}

	// With --service-account, that one wins; a template image wins over --image.
	tmpl.Spec.Containers[0].Image = "registry.local/ning:pinned"
	j, _ = BuildProbeJob(Decision{Busiest: "a", At: t0}, c, JobOptions{SiteLabel: topology.DefaultSiteLabel, Image: "ning:test", ServiceAccount: "ning-probe", Template: tmpl})
	if sa, img := j.Spec.Template.Spec.ServiceAccountName, j.Spec.Template.Spec.Containers[0].Image; sa != "ning-probe" || img != "registry.local/ning:pinned" {
		t.Errorf("service account %q image %q", sa, img)
	}
	if tmpl.Spec.Containers[0].Name != "whatever" {
		t.Error("BuildProbeJob changed the caller's template")
	}
}

func TestParsePodTemplateErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"spec: {containerz: []}", `unknown field "containerz"`},
		{"spec: {containers: [{name: a}, {name: b}]}", "2 containers; want at most one"},
		{"spec: [", "probe pod template:"},
	} {
		_, err := ParsePodTemplate([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
}
