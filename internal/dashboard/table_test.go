package dashboard

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s (-want +got):\n%s", file, d)
	}
}

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
			golden(t, c.golden, b.String())
		})
	}
}

func TestWriteTableEmpty(t *testing.T) {
	var b strings.Builder
	if err := WriteTable(&b, Snapshot{Time: t0}, ""); err != nil {
		t.Fatal(err)
	}
	golden(t, "table-empty.txt", b.String())
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
