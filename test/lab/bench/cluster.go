package bench

import (
	"context"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/ning-edge/ning/internal/topology"
)

// Namespaces of the gateways and of the workloads.
const (
	GatewayNamespace = "gateway"
	BenchNamespace   = "bench"
	// TraefikImage is what test/lab/tools/images writes as traefik.tar.
	TraefikImage  = "docker.io/library/traefik:ning-lab"
	WorkloadImage = "ghcr.io/ning-edge/lab-workload:lab"
	// WebPort is the gateways' web entrypoint on every node's address,
	// MetricsPort their Prometheus metrics and ping.
	WebPort     = 8000
	MetricsPort = 8082
)

// The methods and routings the benchmark compares.
var (
	Methods  = []string{"ning", "default", "optimal"}
	Routings = []string{"plain", "preferClose"}
)

// Host is the Host header that reaches method's workload with routing.
func Host(method, routing string) string { return strings.ToLower(method + "." + routing + ".lab") }

// App is the app label of method's pods, and the name of its Deployment
// (the optimum's are one per site, App plus the site).
func App(method string) string { return "work-" + method }

func serviceName(method, routing string) string {
	if routing == "preferClose" {
		return App(method) + "-pc"
	}
	return App(method)
}

// Workload is the HTTP service every method places: service time and
// concurrency make one replica saturate at Concurrency/ServiceTime.
// MaxConnAge bounds a keep-alive connection's life (the workload's
// -max-conn-age): the gateways keep their connections to a Service's
// cluster IP open, and kube-proxy picks an endpoint per connection, so
// without a bound the split among endpoints is frozen when the connections
// open (docs/lab.md).
type Workload struct {
	Replicas    int
	ServiceTime string // e.g. 25ms
	Concurrency int
	MaxConnAge  string // e.g. 1s; empty: none
}

func create[T any](ctx context.Context, obj T, f func(context.Context, T, metav1.CreateOptions) (T, error)) error {
	if _, err := f(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// Gateways creates Traefik at every node as that site's gateway: a
// DaemonSet on the host network (users reach it at their node's address,
// port WebPort), the Kubernetes Ingress provider routing through each
// Service's cluster IP (nativeLBByDefault: kube-proxy picks the endpoint,
// so the Service's trafficDistribution applies), Prometheus metrics on
// MetricsPort, and OTLP metrics pushed to otlpEndpoint when it is set.
func Gateways(ctx context.Context, c kubernetes.Interface, otlpEndpoint string) error {
	if err := create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: GatewayNamespace}}, c.CoreV1().Namespaces().Create); err != nil {
		return err
	}
	if err := create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "traefik", Namespace: GatewayNamespace}}, c.CoreV1().ServiceAccounts(GatewayNamespace).Create); err != nil {
		return err
	}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "lab-traefik"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"services", "endpoints", "secrets", "nodes"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses", "ingressclasses"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses/status"}, Verbs: []string{"update"}},
	}}
	if err := create(ctx, role, c.RbacV1().ClusterRoles().Create); err != nil {
		return err
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "lab-traefik"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "lab-traefik"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "traefik", Namespace: GatewayNamespace}}}
	if err := create(ctx, binding, c.RbacV1().ClusterRoleBindings().Create); err != nil {
		return err
	}
	args := []string{
		fmt.Sprintf("--entryPoints.web.address=:%d", WebPort),
		fmt.Sprintf("--entryPoints.metrics.address=:%d", MetricsPort),
		"--metrics.prometheus=true",
		"--metrics.prometheus.entryPoint=metrics",
		"--ping=true",
		"--ping.entryPoint=metrics",
		"--providers.kubernetesingress=true",
		"--providers.kubernetesingress.nativeLBByDefault=true",
		"--log.level=INFO",
	}
	env := []v1.EnvVar{
		{Name: "NODE_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		// Traefik's OpenTelemetry resource names the process's owner: a
		// static build (no cgo) reads it from $USER, and without it Traefik
		// logs "Unable to create OpenTelemetry meter provider ... user:
		// Current requires cgo or $USER set" and pushes nothing (v3.6.12
		// sets $USER itself only on another path).
		{Name: "USER", Value: "traefik"},
	}
	if otlpEndpoint != "" {
		args = append(args, "--metrics.otlp=true", "--metrics.otlp.grpc.endpoint="+otlpEndpoint,
			"--metrics.otlp.grpc.insecure=true", "--metrics.otlp.pushInterval=10s")
		// k8s.pod.name too: without it Traefik's Kubernetes resource
		// detector asks the apiserver for a pod named after the host name
		// (the node's, on the host network), and any error but NotFound
		// or Forbidden leaves Traefik without OTLP metrics at all.
		env = append(env, v1.EnvVar{Name: "OTEL_RESOURCE_ATTRIBUTES", Value: "k8s.node.name=$(NODE_NAME),k8s.pod.name=$(POD_NAME)"})
	}
	labels := map[string]string{"app.kubernetes.io/name": "traefik"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "traefik", Namespace: GatewayNamespace},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: v1.PodSpec{
					ServiceAccountName:            "traefik",
					HostNetwork:                   true,
					DNSPolicy:                     v1.DNSClusterFirstWithHostNet,
					TerminationGracePeriodSeconds: ptr.To[int64](2),
					Tolerations:                   []v1.Toleration{{Operator: v1.TolerationOpExists}},
					Containers: []v1.Container{{
						Name: "traefik", Image: TraefikImage, ImagePullPolicy: v1.PullNever,
						Args: args, Env: env,
						Ports: []v1.ContainerPort{{Name: "web", ContainerPort: WebPort}, {Name: "metrics", ContainerPort: MetricsPort}},
						ReadinessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/ping", Port: intstr.FromInt32(MetricsPort)}},
							PeriodSeconds: 2},
						Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("20m"), v1.ResourceMemory: resource.MustParse("64Mi")}},
					}},
				},
			},
		},
	}
	return create(ctx, ds, c.AppsV1().DaemonSets(GatewayNamespace).Create)
}

// Services creates, for every method, a plain Service and a PreferClose
// one over the method's pods, an Ingress per Service on Host(method,
// routing), and a PodDisruptionBudget (minAvailable replicas-1).
func Services(ctx context.Context, c kubernetes.Interface, replicas int) error {
	if err := create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: BenchNamespace}}, c.CoreV1().Namespaces().Create); err != nil {
		return err
	}
	for _, m := range Methods {
		for _, r := range Routings {
			svc := &v1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: serviceName(m, r), Namespace: BenchNamespace},
				Spec: v1.ServiceSpec{
					Selector: map[string]string{"app": App(m)},
					Ports:    []v1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
				},
			}
			if r == "preferClose" {
				svc.Spec.TrafficDistribution = ptr.To(v1.ServiceTrafficDistributionPreferClose)
			}
			if err := create(ctx, svc, c.CoreV1().Services(BenchNamespace).Create); err != nil {
				return err
			}
			pt := netv1.PathTypePrefix
			ing := &netv1.Ingress{
				ObjectMeta: metav1.ObjectMeta{Name: serviceName(m, r), Namespace: BenchNamespace},
				Spec: netv1.IngressSpec{Rules: []netv1.IngressRule{{Host: Host(m, r), IngressRuleValue: netv1.IngressRuleValue{
					HTTP: &netv1.HTTPIngressRuleValue{Paths: []netv1.HTTPIngressPath{{Path: "/", PathType: &pt,
						Backend: netv1.IngressBackend{Service: &netv1.IngressServiceBackend{Name: serviceName(m, r), Port: netv1.ServiceBackendPort{Number: 80}}}}}}}}}},
			}
			if err := create(ctx, ing, c.NetworkingV1().Ingresses(BenchNamespace).Create); err != nil {
				return err
			}
		}
		pdb := &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: App(m), Namespace: BenchNamespace},
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(int32(replicas - 1))),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": App(m)}}},
		}
		if err := create(ctx, pdb, c.PolicyV1().PodDisruptionBudgets(BenchNamespace).Create); err != nil {
			return err
		}
	}
	return nil
}

func deployment(name, app string, replicas int, w Workload) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: BenchNamespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app, "deployment": name}},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app, "deployment": name}},
				Spec: v1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](10),
					Containers: []v1.Container{{
						Name: "http", Image: WorkloadImage, ImagePullPolicy: v1.PullNever,
						Args:  w.args(),
						Ports: []v1.ContainerPort{{ContainerPort: 8080}},
						Env: []v1.EnvVar{
							{Name: "NODE_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
							{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
						},
						ReadinessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1, FailureThreshold: 2},
						// The endpoint leaves the Service before the
						// process stops: a moved pod loses no request.
						Lifecycle: &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 3}}},
						Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("10m"), v1.ResourceMemory: resource.MustParse("16Mi")}},
					}},
				},
			},
		},
	}
}

func (w Workload) args() []string {
	args := []string{"-service-time=" + w.ServiceTime, fmt.Sprintf("-concurrency=%d", w.Concurrency)}
	if w.MaxConnAge != "" {
		args = append(args, "-max-conn-age="+w.MaxConnAge)
	}
	return args
}

// DeployDefault places the workload with the default scheduler (default
// profile, its built-in PodTopologySpread).
func DeployDefault(ctx context.Context, c kubernetes.Interface, w Workload) error {
	return create(ctx, deployment(App("default"), App("default"), w.Replicas, w), c.AppsV1().Deployments(BenchNamespace).Create)
}

// DeployNing places the workload with the ning scheduler.
func DeployNing(ctx context.Context, c kubernetes.Interface, w Workload) error {
	d := deployment(App("ning"), App("ning"), w.Replicas, w)
	d.Spec.Template.Spec.SchedulerName = "ning-scheduler"
	return create(ctx, d, c.AppsV1().Deployments(BenchNamespace).Create)
}

// ScaleNing sets the replicas of ning's Deployment.
func ScaleNing(ctx context.Context, c kubernetes.Interface, replicas int32) error {
	d := c.AppsV1().Deployments(BenchNamespace)
	s, err := d.GetScale(ctx, App("ning"), metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("ning's Deployment's scale: %w", err)
	}
	s.Spec.Replicas = replicas
	if _, err := d.UpdateScale(ctx, App("ning"), s, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("scaling ning's Deployment to %d: %w", replicas, err)
	}
	return nil
}

// DeployOptimal pins the exact optimum's placement: one Deployment per
// site, with a required node affinity to the site's zone.
func DeployOptimal(ctx context.Context, c kubernetes.Interface, w Workload, plan map[string]int) error {
	sites := make([]string, 0, len(plan))
	for s := range plan {
		sites = append(sites, s)
	}
	sort.Strings(sites)
	for _, s := range sites {
		if plan[s] == 0 {
			continue
		}
		d := deployment(App("optimal")+"-"+s, App("optimal"), plan[s], w)
		d.Spec.Template.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
				MatchExpressions: []v1.NodeSelectorRequirement{{Key: topology.DefaultSiteLabel, Operator: v1.NodeSelectorOpIn, Values: []string{s}}}}}}}}
		if err := create(ctx, d, c.AppsV1().Deployments(BenchNamespace).Create); err != nil {
			return err
		}
	}
	return nil
}

// PodsPerSite counts each method's Ready pods per site (nodeSite maps a
// node to its site), and all its pods not being deleted.
func PodsPerSite(ctx context.Context, c kubernetes.Interface, nodeSite map[string]string) (map[string]map[string]int, map[string]int, error) {
	pods, err := c.CoreV1().Pods(BenchNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	ready := map[string]map[string]int{}
	total := map[string]int{}
	for _, p := range pods.Items {
		m, ok := p.Labels["app"]
		if !ok || p.DeletionTimestamp != nil {
			continue
		}
		m = strings.TrimPrefix(m, App(""))
		total[m]++
		for _, cond := range p.Status.Conditions {
			if cond.Type == v1.PodReady && cond.Status == v1.ConditionTrue {
				if ready[m] == nil {
					ready[m] = map[string]int{}
				}
				ready[m][nodeSite[p.Spec.NodeName]]++
			}
		}
	}
	return ready, total, nil
}
