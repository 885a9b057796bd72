package dashboard

import (
	"strings"
	"testing"

	"github.com/ning-edge/ning/internal/goldentest"
)

func TestWriteTable(t *testing.T) {
	for _, c := range []struct{ golden, workload string }{
		{"table-all.txt", ""},
		{"table-web.txt", "shop/web"},
	} {
		t.Run(c.golden, func(t *testing.T) {
			var b strings.Builder
			if err := WriteTable(&b, fixture(t), c.workload); err != nil {
				t.Fatal(err)
			}
			goldentest.Check(t, c.golden, b.String())
		})
	}
}

func TestWriteTableEmpty(t *testing.T) {
	var b strings.Builder
	if err := WriteTable(&b, Snapshot{Time: t0}, ""); err != nil {
		t.Fatal(err)
	}
	goldentest.Check(t, "table-empty.txt", b.String())
}

func TestWriteTableUnknownWorkload(t *testing.T) {
	var b strings.Builder
	err := WriteTable(&b, fixture(t), "shop/api")
	if err == nil || !strings.Contains(err.Error(), "shop/api not found") {
		t.Fatalf("want a not-found error, got %v", err)
	}
	if b.Len() != 0 {
		t.Errorf("nothing should be written on error, got %q", b.String())
	}
}
