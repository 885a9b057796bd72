package chart

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const valuesDoc = "../../docs/reference/helm-values.md"

// value is one documented leaf of values.yaml.
type value struct{ key, def, doc string }

// leaves walks values.yaml and returns every leaf (a scalar, a list or an
// empty map) with its "# -- " description.
func leaves(t *testing.T, n *yaml.Node, prefix string, out *[]value) {
	t.Helper()
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if prefix != "" {
			key = prefix + "." + k.Value
		}
		doc := ""
		for _, line := range strings.Split(k.HeadComment, "\n") {
			if rest, ok := strings.CutPrefix(line, "# -- "); ok {
				doc = rest
			}
		}
		if v.Kind == yaml.MappingNode && len(v.Content) > 0 && doc == "" {
			leaves(t, v, key, out)
			continue
		}
		def, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		d := strings.TrimSpace(string(def))
		if v.Kind != yaml.ScalarNode {
			// Flow style: one line in the table.
			c := *v
			setFlow(&c)
			b, _ := yaml.Marshal(&c)
			d = strings.TrimSpace(string(b))
		}
		if doc == "" {
			t.Errorf("values.yaml: %s has no \"# -- \" description", key)
		}
		*out = append(*out, value{key, d, doc})
	}
}

func setFlow(n *yaml.Node) {
	n.Style |= yaml.FlowStyle
	n.HeadComment, n.LineComment, n.FootComment = "", "", ""
	for _, c := range n.Content {
		setFlow(c)
	}
}

// TestValuesDocumented: every value in values.yaml has a description, and
// docs/reference/helm-values.md is the table made from them (-update
// rewrites it).
func TestValuesDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	var vals []value
	leaves(t, root.Content[0], "", &vals)
	var b bytes.Buffer
	b.WriteString("# Helm chart values\n\nGenerated from `deploy/helm/ning/values.yaml` by `make docs`; do not edit.\n\n")
	b.WriteString("| key | default | description |\n|---|---|---|\n")
	esc := strings.NewReplacer("|", `\|`, "\n", " ")
	for _, v := range vals {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", v.key, esc.Replace(v.def), esc.Replace(v.doc))
	}
	golden(t, valuesDoc, b.String(), "make docs")
}
