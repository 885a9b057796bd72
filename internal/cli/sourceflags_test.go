package cli

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

// TestSourceOptionsValidate: each bad source flag is an error naming it,
// and every one of them is reported at once.
func TestSourceOptionsValidate(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{args: nil},
		{args: []string{"--ewma-alpha", "0"}, want: []string{"--ewma-alpha 0: want a value in (0, 1]"}},
		{args: []string{"--data-ttl", "0s"}, want: []string{"--data-ttl 0s: want a positive duration"}},
		{args: []string{"--site-label", ""}, want: []string{"--site-label: want a label key"}},
		{args: []string{"--goldpinger-url", "goldpinger:8080"}, want: []string{`--goldpinger-url: "goldpinger:8080": want an http:// or https:// URL`}},
		{args: []string{"--scores-url", "http://ok:9810/scores,ftp://x/scores"}, want: []string{`--scores-url: "ftp://x/scores": want an http:// or https:// URL`}},
		{args: []string{"--scores-url", "http://p:9810/scores", "--poll-interval", "0s"}, want: []string{"--poll-interval 0s: want a positive duration"}},
		{args: []string{"--ewma-alpha", "2", "--data-ttl", "-1s", "--scores-url", "http://p/scores", "--poll-timeout", "0s"},
			want: []string{"--ewma-alpha 2: want a value in (0, 1]", "--data-ttl -1s: want a positive duration", "--poll-timeout 0s: want a positive duration"}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var o sourceOptions
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			var got []string
			if err := o.Validate(); err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate (-want +got):\n%s", diff)
			}
		})
	}
}
