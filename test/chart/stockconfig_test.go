package chart

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
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
func checkStockSchedulerConfig(t *testing.T, objs []*unstructured.Unstructured, wantIgnorable, wantBind bool) {
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
	scheme := ports[0].(map[string]any)["name"] // http or https
	want := fmt.Sprintf("%s://%s.%s.svc:%v", scheme, svc.GetName(), svc.GetNamespace(), port)
	if len(cfg.Extenders) != 1 || cfg.Extenders[0].URLPrefix != want || !cfg.Extenders[0].NodeCacheCapable {
		t.Fatalf("extenders %+v, want one nodeCacheCapable at %s", cfg.Extenders, want)
	}
	if want := map[bool]string{true: "bind"}[wantBind]; cfg.Extenders[0].BindVerb != want {
		t.Errorf("extender bindVerb %q, want %q", cfg.Extenders[0].BindVerb, want)
	}
	if cfg.Extenders[0].Ignorable != wantIgnorable {
		t.Errorf("extender ignorable %v, want %v", cfg.Extenders[0].Ignorable, wantIgnorable)
	}
	if scheme != "https" {
		return
	}
	// The CA in the scheduler's configuration verifies the certificate in
	// the extender's Secret, for the Service's name.
	tlsCfg := cfg.Extenders[0].TLSConfig
	if tlsCfg == nil || len(tlsCfg.CAData) == 0 || tlsCfg.Insecure {
		t.Fatalf("https extender without a CA to verify it: %+v", tlsCfg)
	}
	sec := find(t, objs, "Secret", "-extender-tls")
	crtB64, _, _ := unstructured.NestedString(sec.Object, "data", "tls.crt")
	crtPEM, err := base64.StdEncoding.DecodeString(crtB64)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(crtPEM)
	if block == nil {
		t.Fatal("the extender's tls.crt holds no PEM block")
	}
	crt, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(tlsCfg.CAData) {
		t.Fatal("caData holds no certificate")
	}
	host := fmt.Sprintf("%s.%s.svc", svc.GetName(), svc.GetNamespace())
	if _, err := crt.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
		t.Errorf("the extender's certificate does not verify for %s with the scheduler's CA: %v", host, err)
	}
}
