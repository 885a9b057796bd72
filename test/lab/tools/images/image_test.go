package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestNingImageMatchesDockerfile builds the ning image from the repository's
// Dockerfile, writes and re-reads the archive, and checks the user, the
// entrypoint, the labels and the files the Dockerfile's final stage and its
// distroless base give the image.
func TestNingImageMatchesDockerfile(t *testing.T) {
	df, err := os.ReadFile("../../../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := ParseDockerfile(string(df))
	if err != nil {
		t.Fatal(err)
	}
	want := DockerfileSpec{
		Base:       "gcr.io/distroless/static-debian12:nonroot",
		Copies:     []string{"/usr/local/bin/ning"},
		User:       "65532:65532",
		Entrypoint: []string{"/usr/local/bin/ning"},
		Labels: map[string]string{
			"org.opencontainers.image.source":      "https://github.com/ning-edge/ning",
			"org.opencontainers.image.version":     "$VERSION",
			"org.opencontainers.image.description": "ning: latency-aware scheduling for Kubernetes edge clusters",
		},
	}
	if d := cmp.Diff(want, spec); d != "" {
		t.Fatalf("Dockerfile's final stage (-want +got):\n%s", d)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	img, err := NingImage(spec, self)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ning.tar")
	if err := img.Write(file); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(NingRef)
	if err != nil {
		t.Fatal(err)
	}
	back, err := tarball.ImageFromPath(file, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := back.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != spec.User {
		t.Errorf("user %q, want %q", cf.Config.User, spec.User)
	}
	if d := cmp.Diff(spec.Entrypoint, cf.Config.Entrypoint); d != "" {
		t.Errorf("entrypoint (-want +got):\n%s", d)
	}
	wantLabels := map[string]string{}
	for k, v := range spec.Labels {
		wantLabels[k] = strings.ReplaceAll(v, "$VERSION", "lab")
	}
	if d := cmp.Diff(wantLabels, cf.Config.Labels); d != "" {
		t.Errorf("labels (-want +got):\n%s", d)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
	}
	files := map[string]*tar.Header{}
	contents := map[string]string{}
	rc := mutate.Extract(back)
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files["/"+strings.TrimSuffix(h.Name, "/")] = h
		if strings.HasPrefix(h.Name, "etc/") {
			b, _ := io.ReadAll(tr)
			contents["/"+h.Name] = string(b)
		}
	}
	if h := files["/usr/local/bin/ning"]; h == nil || h.Mode&0o111 == 0 || h.Size == 0 {
		t.Errorf("/usr/local/bin/ning: %+v, want an executable file", h)
	}
	if !strings.Contains(contents["/etc/passwd"], "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot user 65532:\n%s", contents["/etc/passwd"])
	}
	if h := files["/tmp"]; h == nil || h.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp: %+v, want mode 1777 as in distroless", h)
	}
	if h := files["/home/nonroot"]; h == nil || h.Uid != 65532 {
		t.Errorf("/home/nonroot: %+v, want owned by 65532", h)
	}
}

func TestParseDockerfileErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"no FROM", "USER 1\n", "no FROM"},
		{"RUN in the final stage", "FROM a AS b\nRUN x\nFROM c\nRUN make\n", "final stage: instruction RUN is not followed by the lab's image builder"},
		{"shell-form ENTRYPOINT", "FROM c\nENTRYPOINT /ning\n", "ENTRYPOINT /ning: want the exec form: invalid character '/' looking for beginning of value"},
		{"unquoted LABEL", "FROM c\nLABEL a=b\n", "LABEL a: want a quoted value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDockerfile(tt.src)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}
