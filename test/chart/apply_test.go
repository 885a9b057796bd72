package chart

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/clock"
	"sigs.k8s.io/yaml"

	"github.com/ning-edge/ning/internal/discover"
	"github.com/ning-edge/ning/internal/scheduler"
	"github.com/ning-edge/ning/internal/testcluster"
	"github.com/ning-edge/ning/internal/topology"
)

// warnings collects the apiserver's warnings (Pod Security admission warns
// about workload templates that would not be admitted in their namespace).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

// cluster is a control plane with RBAC authorisation and Pod Security
// admission, and clients that record warnings.
type cluster struct {
	cp     *testcluster.ControlPlane
	client kubernetes.Interface
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
	warn   *warnings
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	cp := testcluster.Start(t, "--authorization-mode=RBAC")
	w := &warnings{}
	cfg := rest.CopyConfig(cp.Config)
	cfg.WarningHandler = w
	c := kubernetes.NewForConfigOrDie(cfg)
	return &cluster{cp: cp, client: c, dyn: dynamic.NewForConfigOrDie(cfg), warn: w,
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Discovery()))}
}

func (c *cluster) namespace(ctx context.Context, t *testing.T, name, podSecurity string) {
	t.Helper()
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"pod-security.kubernetes.io/enforce": podSecurity}}}
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// apply server-side applies one object with strict field validation: an
// unknown or duplicated field, a wrong type or an invalid value fails.
func (c *cluster) apply(ctx context.Context, u *unstructured.Unstructured) error {
	gvk := u.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("%s %s: %w", gvk.Kind, u.GetName(), err)
	}
	data, err := json.Marshal(u.Object)
	if err != nil {
		return err
	}
	var r dynamic.ResourceInterface = c.dyn.Resource(m.Resource)
	if m.Scope.Name() == "namespace" {
		if u.GetNamespace() == "" {
			return fmt.Errorf("%s %s: namespaced but rendered without a namespace", gvk.Kind, u.GetName())
		}
		r = c.dyn.Resource(m.Resource).Namespace(u.GetNamespace())
	}
	_, err = r.Patch(ctx, u.GetName(), types.ApplyPatchType, data,
		metav1.PatchOptions{FieldManager: "ning-chart-test", Force: new(true), FieldValidation: "Strict"})
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", gvk.Kind, u.GetNamespace(), u.GetName(), err)
	}
	return nil
}

// TestApply renders the chart with each values set and applies every object
// to a real kube-apiserver; then checks what the objects mean: the RBAC each
// ServiceAccount really gets, the probe Job discovery would create from the
// rendered template, and the scheduler configuration, run by ning's scheduler.
func TestApply(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver: skipped in -short (make test-integration and make test-chart run it)")
	}
	c := startCluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	for _, tc := range []struct {
		file, ns, podSecurity string
		check                 func(*testing.T, []*unstructured.Unstructured)
	}{
		{"", namespace, "restricted", func(t *testing.T, objs []*unstructured.Unstructured) {
			checkRBAC(ctx, t, c, namespace, defaultRBAC)
			checkAdmissionPolicies(ctx, t, c, namespace)
			checkProbeJob(ctx, t, c, objs)
			checkSchedulerRuns(ctx, t, c, objs)
		}},
		// Raw ICMP runs the prober as root with NET_RAW: the namespace must
		// allow privileged pods.
		{"testdata/external.yaml", "ning-edge", "privileged", func(t *testing.T, objs []*unstructured.Unstructured) {
			checkRBAC(ctx, t, c, "ning-edge", externalRBAC)
			checkProbeJob(ctx, t, c, objs)
			checkStockSchedulerConfig(t, objs, false, true)
		}},
		{"testdata/failover-reserve.yaml", "ning-reserve", "restricted", func(t *testing.T, objs []*unstructured.Unstructured) {
			checkPlaceholderDeletes(ctx, t, c, "ning-reserve")
			checkPlaceholderPreemption(t, objs)
		}},
		{"testdata/embedded-tls.yaml", "ning-tls", "restricted", func(t *testing.T, objs []*unstructured.Unstructured) {
			checkRBAC(ctx, t, c, "ning-tls", cronJobRBAC)
			checkProbeJob(ctx, t, c, objs)
			checkStockSchedulerConfig(t, objs, true, false)
		}},
	} {
		t.Run(setName(tc.file), func(t *testing.T) {
			ms, err := render(t, readValues(t, tc.file), tc.ns)
			if err != nil {
				t.Fatal(err)
			}
			objs := objects(t, ms)
			c.namespace(ctx, t, tc.ns, tc.podSecurity)
			if gw := gatewayNamespace(objs); gw != "" {
				c.namespace(ctx, t, gw, "restricted")
			}
			kinds := map[string]int{}
			for _, u := range objs {
				if err := c.apply(ctx, u); err != nil {
					t.Error(err)
				}
				kinds[u.GetKind()]++
			}
			if w := c.warn.take(); len(w) > 0 {
				t.Errorf("apiserver warnings (Pod Security %s):\n%s", tc.podSecurity, strings.Join(w, "\n"))
			}
			t.Logf("applied %d objects: %v", len(objs), kinds)
			checkWorkloads(t, objs)
			tc.check(t, objs)
		})
	}
}

// gatewayNamespace is discovery.gatewayNamespace, read from the Role the
// chart puts there.
func gatewayNamespace(objs []*unstructured.Unstructured) string {
	for _, u := range objs {
		if u.GetKind() == "Role" && strings.HasSuffix(u.GetName(), "-discover-gateways") {
			return u.GetNamespace()
		}
	}
	return ""
}

// checkWorkloads: every container of every workload runs without privilege
// escalation on a read-only root with no capability beyond NET_RAW for a raw
// prober, has requests and limits, and a long-running one is probed on
// /healthz (or TCP, for the broker) at a port it serves.
func checkWorkloads(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, u := range objs {
		var tmpl *v1.PodTemplateSpec
		longRunning := true
		switch u.GetKind() {
		case "Deployment":
			var o appsv1.Deployment
			fromUnstructured(t, u, &o)
			tmpl = &o.Spec.Template
		case "DaemonSet":
			var o appsv1.DaemonSet
			fromUnstructured(t, u, &o)
			tmpl = &o.Spec.Template
		case "CronJob":
			var o batchv1.CronJob
			fromUnstructured(t, u, &o)
			tmpl = &o.Spec.JobTemplate.Spec.Template
			longRunning = false
		default:
			continue
		}
		name := u.GetKind() + " " + u.GetName()
		ps := tmpl.Spec
		if ps.ServiceAccountName == "" || ps.ServiceAccountName == "default" {
			t.Errorf("%s: runs as the default service account", name)
		}
		for _, ctr := range ps.Containers {
			sc := ctr.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []v1.Capability{"ALL"}) {
				t.Errorf("%s: container %s security context %+v", name, ctr.Name, sc)
				continue
			}
			raw := slices.Contains(ctr.Args, "--methods=icmp-raw,tcp")
			switch {
			case raw && !slices.Equal(sc.Capabilities.Add, []v1.Capability{"NET_RAW"}):
				t.Errorf("%s: raw ICMP prober adds %v, want exactly NET_RAW", name, sc.Capabilities.Add)
			case !raw && len(sc.Capabilities.Add) > 0:
				t.Errorf("%s: adds capabilities %v", name, sc.Capabilities.Add)
			}
			if !raw && (ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot) {
				t.Errorf("%s: pod may run as root", name)
			}
			for _, r := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
				if _, ok := ctr.Resources.Requests[r]; !ok {
					t.Errorf("%s: no %s request", name, r)
				}
				if _, ok := ctr.Resources.Limits[r]; !ok {
					t.Errorf("%s: no %s limit", name, r)
				}
			}
			checkPodIPListeners(t, name, ctr)
			if !longRunning {
				continue
			}
			for _, p := range []*v1.Probe{ctr.LivenessProbe, ctr.ReadinessProbe} {
				if p == nil {
					t.Errorf("%s: container %s lacks a liveness or readiness probe", name, ctr.Name)
					continue
				}
				var port string
				switch {
				case p.HTTPGet != nil && p.HTTPGet.Path == "/healthz":
					port = p.HTTPGet.Port.String()
				case p.TCPSocket != nil && ctr.Name == "broker":
					port = p.TCPSocket.Port.String()
				default:
					t.Errorf("%s: container %s probe %+v is not /healthz", name, ctr.Name, p)
					continue
				}
				checkServedPort(t, name, ctr, port)
			}
		}
	}
}

// checkServedPort: the probe's named port is declared, and the command is
// told to listen on it (--listen=:N, --listen=$(POD_IP):N with POD_IP the
// pod's IP from the downward API, --metrics-listen=$(POD_IP):N or
// --secure-port=N).
func checkServedPort(t *testing.T, name string, ctr v1.Container, port string) {
	t.Helper()
	var n int32
	for _, p := range ctr.Ports {
		if p.Name == port {
			n = p.ContainerPort
		}
	}
	if n == 0 {
		t.Errorf("%s: probe port %q is not a declared port", name, port)
		return
	}
	podIP := hasPodIPEnv(ctr)
	for _, a := range ctr.Args {
		if a == fmt.Sprintf("--listen=:%d", n) || a == fmt.Sprintf("--secure-port=%d", n) ||
			(podIP && (a == fmt.Sprintf("--listen=$(POD_IP):%d", n) || a == fmt.Sprintf("--metrics-listen=$(POD_IP):%d", n))) {
			return
		}
	}
	t.Errorf("%s: probes port %d but the arguments %v do not serve it", name, n, ctr.Args)
}

// checkPodIPListeners: every listener a container is told of is bound to the
// pod's IP, not to every interface (docs/security.md).
func checkPodIPListeners(t *testing.T, name string, ctr v1.Container) {
	t.Helper()
	for _, a := range ctr.Args {
		flag, addr, ok := strings.Cut(a, "=")
		if !ok || (!strings.HasSuffix(flag, "-listen") && flag != "--bind-address") {
			continue
		}
		if !strings.HasPrefix(addr, "$(POD_IP)") {
			t.Errorf("%s: container %s listens on %q, not on the pod's IP", name, ctr.Name, a)
		} else if !hasPodIPEnv(ctr) {
			t.Errorf("%s: container %s uses $(POD_IP) without POD_IP from status.podIP", name, ctr.Name)
		}
	}
}

// hasPodIPEnv: the container has $POD_IP from the downward API's status.podIP.
func hasPodIPEnv(ctr v1.Container) bool {
	return slices.ContainsFunc(ctr.Env, func(e v1.EnvVar) bool {
		return e.Name == "POD_IP" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP"
	})
}

func fromUnstructured(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, into, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

// access is one question to the RBAC authoriser.
type access struct {
	sa, verb, group, resource, sub, ns, name string
	want                                     bool
}

func (a access) String() string {
	r := a.resource
	if a.sub != "" {
		r += "/" + a.sub
	}
	if a.group != "" {
		r += "." + a.group
	}
	return fmt.Sprintf("%s %s %s %s in %q", a.sa, a.verb, r, a.name, a.ns)
}

// defaultRBAC is what each component may and may not do with the default
// values, release ning in ning-system.
var defaultRBAC = []access{
	// Only the rescheduler evicts or deletes pods.
	{sa: "ning-rescheduler", verb: "create", resource: "pods", sub: "eviction", ns: "default", want: true},
	{sa: "ning-rescheduler", verb: "delete", resource: "pods", ns: "default", want: true},
	{sa: "ning-rescheduler", verb: "patch", resource: "nodes", want: true},
	{sa: "ning-rescheduler", verb: "update", resource: "nodes", want: false},
	{sa: "ning-rescheduler", verb: "create", resource: "pods", ns: "default", want: false},
	{sa: "ning-rescheduler", verb: "watch", group: "coordination.k8s.io", resource: "leases", ns: "kube-node-lease", want: true},
	{sa: "ning-rescheduler", verb: "update", group: "coordination.k8s.io", resource: "leases", ns: "kube-node-lease", name: "node-1", want: false},
	{sa: "ning-rescheduler", verb: "update", group: "coordination.k8s.io", resource: "leases", ns: namespace, name: "ning-rescheduler", want: true},
	{sa: "ning-rescheduler", verb: "update", group: "coordination.k8s.io", resource: "leases", ns: namespace, name: "ning-scheduler", want: false},
	{sa: "ning-rescheduler", verb: "list", group: "apps", resource: "replicasets", want: true},
	{sa: "ning-rescheduler", verb: "create", group: "events.k8s.io", resource: "events", ns: "default", want: true},
	{sa: "ning-rescheduler", verb: "get", resource: "secrets", ns: namespace, want: false},
	{sa: "ning-scheduler", verb: "create", resource: "pods", sub: "binding", ns: "default", want: true},
	{sa: "ning-scheduler", verb: "delete", resource: "pods", ns: "default", want: false},
	{sa: "ning-scheduler", verb: "create", resource: "pods", sub: "eviction", ns: "default", want: false},
	{sa: "ning-scheduler", verb: "patch", resource: "nodes", want: false},
	{sa: "ning-scheduler", verb: "update", group: "coordination.k8s.io", resource: "leases", ns: namespace, name: "ning-scheduler", want: true},
	{sa: "ning-scheduler", verb: "update", group: "coordination.k8s.io", resource: "leases", ns: "kube-system", name: "kube-scheduler", want: false},
	{sa: "ning-scheduler", verb: "get", resource: "configmaps", ns: "kube-system", name: "extension-apiserver-authentication", want: true},
	{sa: "ning-prober", verb: "list", resource: "nodes", want: true},
	{sa: "ning-prober", verb: "list", resource: "pods", want: false},
	{sa: "ning-prober", verb: "patch", resource: "nodes", want: false},
	{sa: "ning-discover", verb: "create", group: "batch", resource: "jobs", ns: namespace, want: true},
	{sa: "ning-discover", verb: "create", group: "batch", resource: "jobs", ns: "default", want: false},
	{sa: "ning-discover", verb: "list", resource: "pods", want: true},
	{sa: "ning-discover", verb: "delete", resource: "pods", ns: namespace, want: false},
	{sa: "ning-discover", verb: "get", group: "apps", resource: "deployments", ns: namespace, name: "ning-discover", want: true},
	{sa: "ning-discover", verb: "get", group: "apps", resource: "deployments", ns: namespace, name: "other", want: false},
	{sa: "ning-discover", verb: "get", group: "batch", resource: "cronjobs", ns: namespace, name: "ning-discover", want: false},
	{sa: "ning-discover", verb: "create", resource: "pods", ns: namespace, want: false},
	// The broker reviews its clients' tokens and reads a prober's node, no more.
	{sa: "ning-broker", verb: "create", group: "authentication.k8s.io", resource: "tokenreviews", want: true},
	{sa: "ning-broker", verb: "get", resource: "nodes", name: "a-1", want: true},
	{sa: "ning-broker", verb: "list", resource: "nodes", want: false},
	{sa: "ning-broker", verb: "get", resource: "secrets", ns: namespace, want: false},
	{sa: "ning-probe-job", verb: "list", resource: "nodes", want: false},
}

// externalRBAC: with testdata/external.yaml (release "edge", preemption on,
// gateways only in namespace traefik, continuous discovery, extender on).
var externalRBAC = []access{
	{sa: "edge-scheduler", verb: "delete", resource: "pods", ns: "default", want: true},
	{sa: "edge-scheduler", verb: "create", resource: "pods", sub: "eviction", ns: "default", want: false},
	{sa: "edge-discover", verb: "list", resource: "pods", ns: "traefik", want: true},
	{sa: "edge-discover", verb: "list", resource: "pods", ns: "default", want: false},
	{sa: "edge-discover", verb: "get", group: "apps", resource: "deployments", ns: "ning-edge", name: "edge-discover", want: true},
	{sa: "edge-extender", verb: "watch", resource: "pods", want: true},
	{sa: "edge-extender", verb: "list", resource: "nodes", want: true},
	{sa: "edge-extender", verb: "create", resource: "pods", sub: "eviction", ns: "default", want: false},
	{sa: "edge-extender", verb: "patch", resource: "nodes", want: false},
	// extender.bind on: /bind binds as the default binder, no more.
	{sa: "edge-extender", verb: "create", resource: "pods", sub: "binding", ns: "default", want: true},
	{sa: "edge-extender", verb: "get", resource: "pods", ns: "default", want: true},
	{sa: "edge-extender", verb: "delete", resource: "pods", ns: "default", want: false},
	{sa: "edge-extender", verb: "update", resource: "pods", ns: "default", want: false},
	{sa: "edge-rescheduler", verb: "update", group: "coordination.k8s.io", resource: "leases", ns: "ning-edge", name: "edge-rescheduler", want: true},
}

// cronJobRBAC: with testdata/embedded-tls.yaml (discovery as a CronJob,
// the rescheduler off, the extender on with its defaults).
var cronJobRBAC = []access{
	{sa: "ning-discover", verb: "get", group: "batch", resource: "cronjobs", ns: "ning-tls", name: "ning-discover", want: true},
	{sa: "ning-discover", verb: "get", group: "apps", resource: "deployments", ns: "ning-tls", name: "ning-discover", want: false},
	{sa: "ning-discover", verb: "create", group: "batch", resource: "jobs", ns: "ning-tls", want: true},
	{sa: "ning-rescheduler", verb: "create", resource: "pods", sub: "eviction", ns: "default", want: false},
	// extender.bind off by default: the default binder binds.
	{sa: "ning-extender", verb: "create", resource: "pods", sub: "binding", ns: "default", want: false},
	{sa: "ning-extender", verb: "get", resource: "pods", ns: "default", want: false},
	{sa: "ning-extender", verb: "create", resource: "pods", sub: "eviction", ns: "default", want: false},
}

// checkRBAC asks the apiserver's RBAC authoriser, as each ServiceAccount.
// The ServiceAccounts live in ns, the release namespace.
func checkRBAC(ctx context.Context, t *testing.T, c *cluster, ns string, cases []access) {
	t.Helper()
	for _, a := range cases {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   "system:serviceaccount:" + ns + ":" + a.sa,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: a.verb, Group: a.group, Resource: a.resource,
				Subresource: a.sub, Namespace: a.ns, Name: a.name},
		}}
		res, err := c.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status.Allowed != a.want {
			t.Errorf("%s: allowed %v, want %v (%s)", a, res.Status.Allowed, a.want, res.Status.Reason)
		}
	}
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, suffix string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() == kind && strings.HasSuffix(u.GetName(), suffix) {
			return u
		}
	}
	t.Fatalf("no %s *%s rendered", kind, suffix)
	return nil
}

func configData(t *testing.T, u *unstructured.Unstructured, key string) string {
	t.Helper()
	s, ok, err := unstructured.NestedString(u.Object, "data", key)
	if err != nil || !ok {
		t.Fatalf("ConfigMap %s has no data.%s (%v)", u.GetName(), key, err)
	}
	return s
}

// checkProbeJob builds the Job `ning discover` would create from the
// rendered --job-template and the discovery container's arguments, and
// creates it on the apiserver in the release namespace.
func checkProbeJob(ctx context.Context, t *testing.T, c *cluster, objs []*unstructured.Unstructured) {
	t.Helper()
	cm := find(t, objs, "ConfigMap", "-discover-probe-job")
	tmpl, err := discover.ParsePodTemplate([]byte(configData(t, cm, "template.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	args := discoverArgs(t, objs)
	opts := discover.JobOptions{Namespace: cm.GetNamespace(), Template: tmpl, Period: 5 * time.Minute, SiteLabel: args["--site-label"][0],
		Image: args["--image"][0], Broker: args["--broker"][0], ServiceAccount: args["--service-account"][0], ExtraArgs: args["--probe-arg"]}
	node := func(name, site, ip string) v1.Node {
		return v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{opts.SiteLabel: site}},
			Status: v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: ip}}}}
	}
	cl := discover.BuildCluster([]v1.Node{node("a-0", "a", "10.0.0.1"), node("b-0", "b", "10.0.1.1")}, nil, opts.SiteLabel)
	job, note := discover.BuildProbeJob(discover.Decision{Busiest: "a", At: time.Now()}, cl, opts)
	if job == nil {
		t.Fatalf("no probe job: %s", note)
	}
	created, err := c.client.BatchV1().Jobs(job.Namespace).Create(ctx, job, metav1.CreateOptions{FieldValidation: "Strict"})
	if err != nil {
		t.Fatalf("creating the probe Job: %v", err)
	}
	if w := c.warn.take(); len(w) > 0 {
		t.Errorf("probe Job warnings:\n%s", strings.Join(w, "\n"))
	}
	ps := created.Spec.Template.Spec
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Error("the probe Job mounts a Kubernetes API token it does not need")
	}
	ctr := ps.Containers[0]
	// With mqtt.auth=token the file is its own broker-audience token, else the password.
	file := slices.ContainsFunc(ctr.Args, func(a string) bool {
		return a == "--mqtt-password-file=/etc/ning/mqtt/password" || a == "--mqtt-password-file=/etc/ning/mqtt/token"
	})
	if !file || len(ctr.VolumeMounts) == 0 || ctr.VolumeMounts[0].MountPath != "/etc/ning/mqtt" {
		t.Errorf("the probe Job cannot read the MQTT password: args %v mounts %v", ctr.Args, ctr.VolumeMounts)
	}
}

// discoverArgs returns the discovery container's --flag=value arguments.
func discoverArgs(t *testing.T, objs []*unstructured.Unstructured) map[string][]string {
	t.Helper()
	var spec v1.PodSpec
	for _, u := range objs {
		if !strings.HasSuffix(u.GetName(), "-discover") {
			continue
		}
		switch u.GetKind() {
		case "CronJob":
			var o batchv1.CronJob
			fromUnstructured(t, u, &o)
			spec = o.Spec.JobTemplate.Spec.Template.Spec
		case "Deployment":
			var o appsv1.Deployment
			fromUnstructured(t, u, &o)
			spec = o.Spec.Template.Spec
		}
	}
	if len(spec.Containers) == 0 {
		t.Fatal("no discovery workload rendered")
	}
	out := map[string][]string{}
	for _, a := range spec.Containers[0].Args[1:] {
		k, v, _ := strings.Cut(a, "=")
		out[k] = append(out[k], v)
	}
	return out
}

// checkSchedulerRuns runs ning's scheduler with the rendered
// KubeSchedulerConfiguration (every plugin's arguments decoded and
// validated by the plugins themselves) and has it place a pod.
func checkSchedulerRuns(ctx context.Context, t *testing.T, c *cluster, objs []*unstructured.Unstructured) {
	t.Helper()
	var cfg map[string]any
	if err := yaml.UnmarshalStrict([]byte(configData(t, find(t, objs, "ConfigMap", "-scheduler-config"), "config.yaml")), &cfg); err != nil {
		t.Fatal(err)
	}
	// This process is not in a cluster and must not take the Lease.
	cfg["clientConnection"] = map[string]any{"kubeconfig": c.cp.Kubeconfig}
	cfg["leaderElection"] = map[string]any{"leaderElect": false}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	store := topology.NewStore(topology.Config{}, clock.RealClock{})
	done, err := scheduler.Start(sctx, t.TempDir(), string(data), store)
	if err != nil {
		t.Fatalf("ning scheduler with the chart's configuration: %v", err)
	}
	defer func() { stop(); <-done }()
	if _, err := testcluster.CreateReadyNode(ctx, c.client, testcluster.Node{Name: "a-0", Site: "a"}); err != nil {
		t.Fatal(err)
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "placed", Namespace: "default"},
		Spec: v1.PodSpec{SchedulerName: "ning-scheduler", Containers: []v1.Container{{Name: "c", Image: "app"}}}}
	if _, err := c.client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := c.client.CoreV1().Pods("default").Get(ctx, "placed", metav1.GetOptions{})
		return err == nil && p.Spec.NodeName == "a-0", err
	})
	if err != nil {
		t.Fatalf("the chart's scheduler profile did not place a pod: %v", err)
	}
}
