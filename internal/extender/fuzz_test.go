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

// bindSeeds are /bind requests as kube-scheduler sends them and near misses.
var bindSeeds = []string{
	`{"PodName":"p","PodNamespace":"default","PodUID":"0b6b4c6e-1f7e-4c43-9d0a-2f1c1d1e1f10","Node":"a-0"}`,
	`{"PodName":"p","PodNamespace":"default","Node":"a-0"}`,
	`{"PodName":"","PodNamespace":"default","PodUID":"u","Node":"a-0"}`,
	`{"PodName":7}`,
	`null`,
	`{"PodName":`,
}

// fuzzRequest checks that any body gets 200, 400 or 413 and never a 500 or a
// panic, and that a 200 is valid JSON.
func fuzzRequest(f *testing.F, path string, seeds []string) {
	for _, s := range seeds {
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

func FuzzFilterRequest(f *testing.F)     { fuzzRequest(f, "/filter", fuzzSeeds) }
func FuzzPrioritizeRequest(f *testing.F) { fuzzRequest(f, "/"+verbPrioritize, fuzzSeeds) }
func FuzzBindRequest(f *testing.F)       { fuzzRequest(f, "/bind", bindSeeds) }
