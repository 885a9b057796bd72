package source

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ning-edge/ning/internal/topology"
)

// checkSamples fails when a sample would be garbage in the store.
func checkSamples(t *testing.T, samples []topology.RTTSample) {
	t.Helper()
	for _, m := range samples {
		if m.Sent <= 0 || m.Received < 0 || m.Received > m.Sent {
			t.Fatalf("sample %+v: bad counts", m)
		}
		if m.Received > 0 {
			if err := topology.ValidateRTT(m.MeanMs); err != nil {
				t.Fatalf("sample %+v: %v", m, err)
			}
		}
	}
}

func FuzzDecodeCheckAll(f *testing.F) {
	good, err := os.ReadFile("testdata/goldpinger/check_all.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"responses": {}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCheckAll(data, DefaultMaxPayload)
		if err != nil {
			if _, ok := err.(*topology.RejectError); !ok {
				t.Fatalf("error %T is not a RejectError", err)
			}
			return
		}
		samples, _, err := GoldpingerObservations(c, testSites, time.Unix(0, 0))
		if err == nil {
			checkSamples(t, samples)
		}
	})
}

func FuzzDecodeScores(f *testing.F) {
	f.Add([]byte(`[{"hostname":"a-1","ipv4":"","cpuEwmaScore":0.4,"latencyEwmaScore":0},{"hostname":"b-1","ipv4":"10.0.1.1","cpuEwmaScore":0,"latencyEwmaScore":0.1}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		scores, err := DecodeScores(data, DefaultMaxPayload)
		if err != nil {
			if _, ok := err.(*topology.RejectError); !ok {
				t.Fatalf("error %T is not a RejectError", err)
			}
			return
		}
		samples, _, err := ScoresObservations(scores, testSites, time.Unix(0, 0))
		if err == nil {
			checkSamples(t, samples)
		}
		node, l, err := ScoresLoad(scores, testSites, time.Unix(0, 0))
		var re *topology.RejectError
		switch {
		case err != nil && (!errors.As(err, &re) || re.Reason != topology.ReasonBadLoad):
			t.Fatalf("ScoresLoad error %v is not a bad_load RejectError", err)
		case err == nil && node != "":
			if err := topology.ValidateLoad(l); err != nil {
				t.Fatalf("ScoresLoad gave node %s an invalid load: %v", node, err)
			}
		}
	})
}
