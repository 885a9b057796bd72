package extender

import (
	"net/http"
	"testing"
)

// fuzzSeeds are requests as kube-scheduler sends them and near misses; the
// corpus under testdata/fuzz holds more.
var fuzzSeeds = []string{
	`{"Pod":{"metadata":{"name":"p","namespace":"default","labels":{"delay_c":"15"}}},"Nodes":null,"NodeNames":["a-0","c-0"]}`,
	`{"Pod":{"metadata":{"name":"p","namespace":"default","labels":{"delay_anchor":"1ms"}}},"Nodes":{"items":[{"metadata":{"name":"a-0","labels":{"topology.kubernetes.io/zone":"a"}}}]},"NodeNames":null}`,
	`{"Pod":{"metadata":{"name":"p","labels":{"delay_":"x"}}},"NodeNames":["cloud-0"]}`,
	`{"Pod":{},"NodeNames":["ghost"]}`,
	`null`,
	`{"Pod":`,
}

// fuzzRequest checks that any body gets 200, 400 or 413 and never a 500 or a
// panic, and that a 200 is valid JSON.
func fuzzRequest(f *testing.F, path string) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	e := newEnv(f, testNodes()...)
	f.Fuzz(func(t *testing.T, body []byte) {
		code, out := e.post(t, path, body)
		switch code {
		case http.StatusOK:
			if len(out) == 0 || (out[0] != '{' && out[0] != '[') {
				t.Fatalf("200 with %q", out)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("code %d for %q: %s", code, body, out)
		}
	})
}

func FuzzFilterRequest(f *testing.F)     { fuzzRequest(f, "/filter") }
func FuzzPrioritizeRequest(f *testing.F) { fuzzRequest(f, "/"+verbPrioritize) }
