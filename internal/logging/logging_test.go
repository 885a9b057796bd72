package logging

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/klog/v2"
)

// TestSetupFiltersLibraryOutput logs through klog as the libraries do
// (klog.InfoS, klog.V(n), klog.ErrorS and apimachinery's HandleError, which
// client-go's informers call) and checks that --log-level decides what
// reaches the output.
func TestSetupFiltersLibraryOutput(t *testing.T) {
	tests := []struct {
		level string
		want  []string
	}{
		{"error", []string{"klog-error", "handle-error"}},
		{"warn", []string{"klog-error", "handle-error"}},
		{"info", []string{"klog-info", "klog-error", "handle-error"}},
		{"debug", []string{"klog-info", "klog-v2", "klog-error", "handle-error"}},
	}
	defer klog.ClearLogger()
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := Setup(&buf, tt.level)
			if err != nil {
				t.Fatal(err)
			}
			klog.InfoS("klog-info")
			klog.V(2).InfoS("klog-v2")
			klog.V(6).InfoS("klog-v6")
			klog.ErrorS(errors.New("boom"), "klog-error")
			utilruntime.HandleError(errors.New("handle-error"))
			log.Debug("slog-debug-" + tt.level)
			var got []string
			for _, m := range []string{"klog-info", "klog-v2", "klog-v6", "klog-error", "handle-error"} {
				if strings.Contains(buf.String(), m) {
					got = append(got, m)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("lines shown at %s (-want +got):\n%s\noutput:\n%s", tt.level, diff, buf.String())
			}
			if shown := strings.Contains(buf.String(), "slog-debug"); shown != (tt.level == "debug") {
				t.Errorf("slog debug line shown %t at %s", shown, tt.level)
			}
		})
	}
}

func TestParseLevel(t *testing.T) {
	if _, err := Setup(&bytes.Buffer{}, "loud"); err == nil || !strings.Contains(err.Error(), `--log-level "loud"`) {
		t.Errorf("Setup(loud) = %v, want an error naming --log-level", err)
	}
}
