// Package chart tests deploy/helm/ning with Helm's own Go packages (lint,
// template), keeps deploy/manifests and the values reference in sync, and
// applies every rendered object to a real kube-apiserver.
package chart

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite deploy/manifests and docs/reference/helm-values.md from the chart")

const (
	chartDir      = "../../deploy/helm/ning"
	manifestsFile = "../../deploy/manifests/ning.yaml"
	release       = "ning"
	namespace     = "ning-system"
)

// kubeVersion is the cluster version the chart is rendered and linted for:
// the Kubernetes libraries ning is built on.
var kubeVersion = &chartutil.KubeVersion{Version: "v1.34.1", Major: "1", Minor: "34"}

// valueSets are the values files under test: the defaults and the
// non-default combinations in testdata.
var valueSets = []string{"", "testdata/external.yaml", "testdata/embedded-tls.yaml"}

// setName names a values set in subtests.
func setName(file string) string {
	if file == "" {
		return "defaults"
	}
	return strings.TrimSuffix(filepath.Base(file), ".yaml")
}

func readValues(t *testing.T, file string) map[string]any {
	t.Helper()
	if file == "" {
		return map[string]any{}
	}
	v, err := chartutil.ReadValuesFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return v.AsMap()
}

// manifest is one rendered template file, split into its documents.
type manifest struct {
	source string // e.g. ning/templates/scheduler.yaml
	docs   []string
}

// render is `helm template --namespace ns release chart -f file`: the
// manifests in Helm's install order, without NOTES.txt.
func render(t *testing.T, vals map[string]any, ns string) ([]manifest, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = *kubeVersion
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: release, Namespace: ns, Revision: 1, IsInstall: true}, caps)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return nil, err
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name)
		}
	}
	_, sorted, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, err
	}
	// SortManifests splits files into documents already; regroup them by
	// source so the output reads like helm template's.
	var out []manifest
	for _, m := range sorted {
		out = append(out, manifest{source: m.Name, docs: []string{m.Content}})
	}
	return out, nil
}

func mustRender(t *testing.T, vals map[string]any) []manifest {
	t.Helper()
	ms, err := render(t, vals, namespace)
	if err != nil {
		t.Fatalf("rendering: %v", err)
	}
	return ms
}

// objects decodes every rendered document.
func objects(t *testing.T, ms []manifest) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, m := range ms {
		for _, d := range m.docs {
			u := &unstructured.Unstructured{}
			if err := yaml.UnmarshalStrict([]byte(d), &u.Object); err != nil {
				t.Fatalf("%s: %v\n%s", m.source, err, d)
			}
			if len(u.Object) == 0 {
				continue
			}
			out = append(out, u)
		}
	}
	return out
}

// TestLint runs Helm's linter (helm lint) on the chart with every values
// set; a warning fails as an error does.
func TestLint(t *testing.T) {
	for _, file := range valueSets {
		t.Run(setName(file), func(t *testing.T) {
			l := lint.AllWithKubeVersion(chartDir, readValues(t, file), namespace, kubeVersion)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				} else {
					t.Logf("helm lint: %s", m)
				}
			}
		})
	}
}

// TestRenderErrors: values that cannot work fail at install time with a
// message naming the value.
func TestRenderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals string
		want string
	}{
		{"no broker at all", "broker: {enabled: false}", "mqtt.url is empty and broker.enabled is false"},
		{"otlp from a cronjob", "discovery: {mode: cronjob, source: otlp}", "discovery.source otlp receives pushes and needs discovery.mode continuous"},
		{"unknown mode", "discovery: {mode: daemon}", `discovery.mode "daemon": want cronjob or continuous`},
		{"unknown source", "discovery: {source: kafka, mode: continuous}", `discovery.source "kafka": want prometheus or otlp`},
		{"unknown icmp", "prober: {icmp: magic}", `prober.icmp "magic": want unprivileged or raw`},
		{"odd duration", "discovery: {mode: cronjob, wait: 1m30s}", `duration "1m30s": want whole seconds`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := chartutil.ReadValues([]byte(tc.vals))
			if err != nil {
				t.Fatal(err)
			}
			_, err = render(t, v.AsMap(), namespace)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("render error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// plainManifests is deploy/manifests/ning.yaml: the namespace, then the
// chart rendered with its defaults as release "ning" in "ning-system".
func plainManifests(t *testing.T) string {
	var b bytes.Buffer
	b.WriteString("# Generated from deploy/helm/ning with its default values (release " + release + ",\n" +
		"# namespace " + namespace + ") by `make manifests`; do not edit. Before applying, create\n" +
		"# the MQTT credentials Secret (see docs/install.md):\n" +
		"#   kubectl apply -f deploy/manifests/ning.yaml   # creates the namespace first\n" +
		"#   kubectl -n " + namespace + " create secret generic ning-mqtt --from-literal=username=admin --from-literal=password=...\n")
	fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n    app.kubernetes.io/part-of: ning\n"+
		"    pod-security.kubernetes.io/enforce: restricted\n", namespace)
	for _, m := range mustRender(t, map[string]any{}) {
		for _, d := range m.docs {
			fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.source, strings.TrimSpace(d))
		}
	}
	return b.String()
}

// TestManifestsUpToDate keeps deploy/manifests/ning.yaml equal to the chart
// rendered with its defaults (make manifests rewrites it).
func TestManifestsUpToDate(t *testing.T) {
	golden(t, manifestsFile, plainManifests(t), "make manifests")
}

// golden compares file with want, after rewriting it with -update; hint
// names the command that regenerates it.
func golden(t *testing.T, file, want, hint string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run %s)", err, hint)
	}
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Fatalf("%s is out of date; run %s (-want +got):\n%s", file, hint, diff)
	}
}
