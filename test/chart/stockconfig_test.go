package chart

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/validation"
)

// checkStockSchedulerConfig decodes the extender's KubeSchedulerConfiguration
// for the stock scheduler with kube-scheduler's own scheme (defaults and
// validation included) and checks that it calls the rendered Service.
func checkStockSchedulerConfig(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	data := configData(t, find(t, objs, "ConfigMap", "-extender-scheduler-config"), "config.yaml")
	obj, err := runtime.Decode(schedscheme.Codecs.UniversalDecoder(), []byte(data))
	if err != nil {
		t.Fatalf("decoding the stock scheduler's configuration: %v", err)
	}
	cfg, ok := obj.(*schedconfig.KubeSchedulerConfiguration)
	if !ok {
		t.Fatalf("decoded %T", obj)
	}
	if err := validation.ValidateKubeSchedulerConfiguration(cfg); err != nil {
		t.Fatalf("invalid stock scheduler configuration: %v", err)
	}
	svc := find(t, objs, "Service", "-extender")
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	port := ports[0].(map[string]any)["port"]
	want := fmt.Sprintf("http://%s.%s.svc:%v", svc.GetName(), svc.GetNamespace(), port)
	if len(cfg.Extenders) != 1 || cfg.Extenders[0].URLPrefix != want || !cfg.Extenders[0].NodeCacheCapable {
		t.Fatalf("extenders %+v, want one nodeCacheCapable at %s", cfg.Extenders, want)
	}
}
