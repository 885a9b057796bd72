package discover

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// Labels on every probe Job discovery creates.
const (
	LabelManagedBy   = "app.kubernetes.io/managed-by"
	ManagedByValue   = "ning-discover"
	LabelComponent   = "app.kubernetes.io/component"
	ComponentValue   = "probe"
	AnnotationSite   = "ning.io/site"
	LabelSiteHash    = "ning.io/site-hash"
	DefaultImage     = "ghcr.io/ning-edge/ning:latest"
	DefaultJobTTL    = 10 * time.Minute
	DefaultKeepJobs  = 3
	DefaultJobPeriod = 5 * time.Minute
)

// JobOptions shapes the probe Job.
type JobOptions struct {
	Namespace string
	Image     string
	// SiteLabel is the node label the Job's affinity matches.
	SiteLabel string
	// Broker is passed to the prober as --broker.
	Broker string
	// ExtraArgs are appended to the prober's arguments (MQTT credentials...).
	ExtraArgs []string
	// ServiceAccount runs the prober pod; empty means the namespace default.
	ServiceAccount string
	// TTL is ttlSecondsAfterFinished; zero means DefaultJobTTL.
	TTL time.Duration
	// Period buckets Job names: one Job per site per period.
	Period time.Duration
	// Owner, when set, owns the Job (e.g. the CronJob running discovery),
	// so deleting it deletes its probe Jobs.
	Owner *metav1.OwnerReference
	// Keep is how many finished probe Jobs to keep; older ones are deleted.
	Keep int
	// Template, when set, is the pod template the Job starts from (security
	// context, volumes, environment, resources, tolerations): see
	// ParsePodTemplate for what ning sets on top of it.
	Template *v1.PodTemplateSpec
}

func (o JobOptions) withDefaults() JobOptions {
	if o.Image == "" {
		o.Image = DefaultImage
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.TTL <= 0 {
		o.TTL = DefaultJobTTL
	}
	if o.Period <= 0 {
		o.Period = DefaultJobPeriod
	}
	if o.Keep < 0 {
		o.Keep = 0
	}
	return o
}

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// siteHash is a short stable hash of a site name, for labels and names.
func siteHash(site string) string {
	h := sha256.Sum256([]byte(site))
	return hex.EncodeToString(h[:])[:8]
}

// JobName is deterministic per site and period bucket, so running discovery
// twice in one period names the same Job and the second create is a no-op.
func JobName(site string, at time.Time, period time.Duration) string {
	s := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(site), "-"), "-")
	if len(s) > 20 {
		s = strings.Trim(s[:20], "-")
	}
	bucket := at.Unix() / int64(period/time.Second)
	return fmt.Sprintf("ning-probe-%s-%s-%d", s, siteHash(site), bucket)
}

// BuildProbeJob returns the Job that runs `ning probe --once --publish` on the
// busiest site against the other sites' representative nodes. It returns nil
// and a reason when there is nothing to probe.
func BuildProbeJob(d Decision, c *Cluster, o JobOptions) (*batchv1.Job, string) {
	o = o.withDefaults()
	if d.Busiest == "" {
		return nil, "no site has traffic"
	}
	var targets []string
	var missing []string
	for _, site := range c.SiteNames() {
		if site == d.Busiest {
			continue
		}
		n, ok := c.Representative(site)
		if !ok {
			missing = append(missing, site)
			continue
		}
		targets = append(targets, fmt.Sprintf("%s/%s=%s", site, n.Name, n.InternalIP))
	}
	if len(targets) == 0 {
		if len(missing) > 0 {
			return nil, fmt.Sprintf("no other site has a node with an InternalIP (sites without one: %s)", strings.Join(missing, ", "))
		}
		return nil, "the busiest site is the only site"
	}
	args := []string{"probe", "--once", "--publish", "--site", d.Busiest}
	if o.Broker != "" {
		args = append(args, "--broker", o.Broker)
	}
	for _, t := range targets {
		args = append(args, "--target", t)
	}
	args = append(args, o.ExtraArgs...)

	// A labelled site is matched by its label; a node that is a site of its
	// own (no label) by its name.
	req := v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{Key: o.SiteLabel, Operator: v1.NodeSelectorOpIn, Values: []string{d.Busiest}}}}
	if nodes := c.Sites[d.Busiest]; len(nodes) == 1 && !c.Nodes[nodes[0]].Labelled {
		req = v1.NodeSelectorTerm{MatchFields: []v1.NodeSelectorRequirement{{Key: "metadata.name", Operator: v1.NodeSelectorOpIn, Values: []string{nodes[0]}}}}
	}
	labels := map[string]string{LabelManagedBy: ManagedByValue, LabelComponent: ComponentValue, LabelSiteHash: siteHash(d.Busiest)}
	job := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name: JobName(d.Busiest, d.At, o.Period), Namespace: o.Namespace, Labels: labels,
			Annotations: map[string]string{AnnotationSite: d.Busiest},
		},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](1),
			ActiveDeadlineSeconds:   ptr.To(int64(o.Period / time.Second)),
			TTLSecondsAfterFinished: ptr.To(int32(o.TTL / time.Second)),
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{AnnotationSite: d.Busiest}},
				Spec: v1.PodSpec{
					RestartPolicy:      v1.RestartPolicyNever,
					ServiceAccountName: o.ServiceAccount,
					Affinity: &v1.Affinity{NodeAffinity: &v1.NodeAffinity{
						RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{req}},
					}},
					Containers: []v1.Container{{
						Name: "probe", Image: o.Image, Args: args,
						Env:             []v1.EnvVar{nodeNameEnv},
						SecurityContext: &v1.SecurityContext{Capabilities: &v1.Capabilities{Add: []v1.Capability{"NET_RAW"}}},
					}},
				},
			},
		},
	}
	if o.Template != nil {
		job.Spec.Template = fromTemplate(*o.Template, job.Spec.Template)
	}
	if o.Owner != nil {
		job.OwnerReferences = []metav1.OwnerReference{*o.Owner}
	}
	return job, ""
}

var nodeNameEnv = v1.EnvVar{Name: "NODE_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}

// fromTemplate lays ning's part of the probe pod (own) over a copy of the
// user's template: ning's labels and annotations win, the restart policy is
// Never, the node affinity's required terms are ning's (the template's other
// affinity stays), the service account is ning's when one was given, and the
// first container gets ning's name, arguments and NODE_NAME, and ning's image
// unless the template names one. Everything else (security contexts,
// volumes, environment, resources, tolerations, sysctls) is the template's.
func fromTemplate(tmpl, own v1.PodTemplateSpec) v1.PodTemplateSpec {
	t := *tmpl.DeepCopy()
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	for k, v := range own.Labels {
		t.Labels[k] = v
	}
	if t.Annotations == nil {
		t.Annotations = map[string]string{}
	}
	for k, v := range own.Annotations {
		t.Annotations[k] = v
	}
	t.Spec.RestartPolicy = v1.RestartPolicyNever
	if own.Spec.ServiceAccountName != "" {
		t.Spec.ServiceAccountName = own.Spec.ServiceAccountName
	}
	if t.Spec.Affinity == nil {
		t.Spec.Affinity = &v1.Affinity{}
	}
	if t.Spec.Affinity.NodeAffinity == nil {
		t.Spec.Affinity.NodeAffinity = &v1.NodeAffinity{}
	}
	t.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = own.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	if len(t.Spec.Containers) == 0 {
		t.Spec.Containers = []v1.Container{{}}
	}
	c := &t.Spec.Containers[0]
	mine := own.Spec.Containers[0]
	c.Name, c.Args = mine.Name, mine.Args
	if c.Image == "" {
		c.Image = mine.Image
	}
	env := []v1.EnvVar{nodeNameEnv}
	for _, e := range c.Env {
		if e.Name != nodeNameEnv.Name {
			env = append(env, e)
		}
	}
	c.Env = env
	return t
}

// ParsePodTemplate reads a probe pod template (a core/v1 PodTemplateSpec in
// YAML or JSON: metadata and spec) strictly: an unknown field is an error.
func ParsePodTemplate(data []byte) (*v1.PodTemplateSpec, error) {
	var t v1.PodTemplateSpec
	if err := yaml.UnmarshalStrict(data, &t); err != nil {
		return nil, fmt.Errorf("probe pod template: %w", err)
	}
	if len(t.Spec.Containers) > 1 {
		return nil, fmt.Errorf("probe pod template: %d containers; want at most one (the prober)", len(t.Spec.Containers))
	}
	return &t, nil
}

// EnsureJob creates job unless a probe Job for the same site is still
// running or the same Job exists already, then deletes finished probe Jobs
// beyond the newest keep. It returns the Job that covers the site and
// whether it was created now.
func EnsureJob(ctx context.Context, c kubernetes.Interface, job *batchv1.Job, keep int, log *slog.Logger) (*batchv1.Job, bool, error) {
	jobs := c.BatchV1().Jobs(job.Namespace)
	list, err := jobs.List(ctx, metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedByValue + "," + LabelComponent + "=" + ComponentValue})
	if err != nil {
		return nil, false, fmt.Errorf("listing probe jobs in %s: %w", job.Namespace, err)
	}
	var existing *batchv1.Job
	var finished []batchv1.Job
	for i := range list.Items {
		j := &list.Items[i]
		if jobFinished(j) {
			finished = append(finished, *j)
			continue
		}
		if j.Labels[LabelSiteHash] == job.Labels[LabelSiteHash] && j.Annotations[AnnotationSite] == job.Annotations[AnnotationSite] && existing == nil {
			existing = j
		}
	}
	created := false
	switch {
	case existing != nil:
		log.Info("a probe job for this site is still running; not starting another", "job", existing.Name, "site", job.Annotations[AnnotationSite])
	default:
		existing, err = jobs.Create(ctx, job, metav1.CreateOptions{})
		switch {
		case apierrors.IsAlreadyExists(err):
			if existing, err = jobs.Get(ctx, job.Name, metav1.GetOptions{}); err != nil {
				return nil, false, fmt.Errorf("reading probe job %s: %w", job.Name, err)
			}
			log.Info("probe job for this site and period exists already", "job", job.Name)
		case err != nil:
			return nil, false, fmt.Errorf("creating probe job %s: %w", job.Name, err)
		default:
			created = true
			log.Info("created probe job", "job", job.Name, "site", job.Annotations[AnnotationSite])
		}
	}
	// Clean up: the TTL controller removes finished Jobs, but it may be off.
	sort.Slice(finished, func(i, k int) bool {
		return finished[i].CreationTimestamp.After(finished[k].CreationTimestamp.Time) ||
			(finished[i].CreationTimestamp.Equal(&finished[k].CreationTimestamp) && finished[i].Name > finished[k].Name)
	})
	for i := keep; i < len(finished); i++ {
		j := finished[i]
		if j.Name == existing.Name {
			continue
		}
		err := jobs.Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
		if err != nil && !apierrors.IsNotFound(err) {
			return existing, created, fmt.Errorf("deleting old probe job %s: %w", j.Name, err)
		}
		log.Info("deleted old probe job", "job", j.Name)
	}
	return existing, created, nil
}

func jobFinished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == v1.ConditionTrue {
			return true
		}
	}
	return false
}
