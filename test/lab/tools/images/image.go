package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The references the lab's pods use (imagePullPolicy IfNotPresent or Never:
// nothing is ever pulled).
const (
	NingRef     = "ghcr.io/ning-edge/ning:lab"
	PauseRef    = "registry.k8s.io/pause:ning-lab"
	WorkloadRef = "ghcr.io/ning-edge/lab-workload:lab"
	BusyboxRef  = "docker.io/library/busybox:ning-lab"
	TraefikRef  = "docker.io/library/traefik:ning-lab"
)

// Image is a built image and the reference it is tagged with.
type Image struct {
	Ref string
	Img v1.Image
}

// Write saves the image as a docker-save tarball.
func (i Image) Write(file string) error {
	tag, err := name.NewTag(i.Ref)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(file, tag, i.Img)
}

// entry is one file of a layer.
type entry struct {
	path string
	mode int64
	uid  int
	gid  int
	dir  bool
	link string // symlink target
	data []byte
}

// layer builds an uncompressed tar of the entries (parents before children)
// as a go-containerregistry layer. File times are fixed, so the same inputs
// give the same digest.
func layer(entries []entry) (v1.Layer, error) {
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].path < entries[j].path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, e := range entries {
		h := &tar.Header{Name: strings.TrimPrefix(e.path, "/"), Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case e.dir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

func image(entries []entry, cfg v1.Config) (v1.Image, error) {
	l, err := layer(entries)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Config = cfg
	return mutate.ConfigFile(img, cf)
}

func readBinary(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 4 || string(b[1:4]) != "ELF" {
		return nil, fmt.Errorf("%s is not an ELF binary", path)
	}
	return b, nil
}

// distrolessStatic is what gcr.io/distroless/static-debian12:nonroot holds
// that a static Go binary uses: the users and groups (root, nobody, nonroot),
// the nonroot home, a world-writable /tmp and the CA certificates.
func distrolessStatic() ([]entry, error) {
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group := "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
	es := []entry{
		{path: "/etc", dir: true, mode: 0o755},
		{path: "/etc/passwd", mode: 0o644, data: []byte(passwd)},
		{path: "/etc/group", mode: 0o644, data: []byte(group)},
		{path: "/etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{path: "/home", dir: true, mode: 0o755},
		{path: "/home/nonroot", dir: true, mode: 0o700, uid: 65532, gid: 65532},
		{path: "/root", dir: true, mode: 0o700},
		{path: "/tmp", dir: true, mode: 0o1777},
		{path: "/usr", dir: true, mode: 0o755},
		{path: "/usr/local", dir: true, mode: 0o755},
		{path: "/usr/local/bin", dir: true, mode: 0o755},
	}
	if ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		es = append(es, entry{path: "/etc/ssl", dir: true, mode: 0o755}, entry{path: "/etc/ssl/certs", dir: true, mode: 0o755},
			entry{path: "/etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca})
	}
	return es, nil
}

// NingImage packages bin as spec (the Dockerfile's final stage) says, on
// distroless static's files.
func NingImage(spec DockerfileSpec, bin string) (Image, error) {
	b, err := readBinary(bin)
	if err != nil {
		return Image{}, err
	}
	es, err := distrolessStatic()
	if err != nil {
		return Image{}, err
	}
	for _, c := range spec.Copies {
		es = append(es, entry{path: c, mode: 0o755, data: b})
	}
	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = strings.ReplaceAll(v, "$VERSION", "lab")
	}
	img, err := image(es, v1.Config{
		User:       spec.User,
		Entrypoint: spec.Entrypoint,
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		WorkingDir: "/",
		Labels:     labels,
	})
	return Image{Ref: NingRef, Img: img}, err
}

// SingleBinaryImage is an image of one static binary at path, its entrypoint.
func SingleBinaryImage(ref, bin, path string, args []string) (Image, error) {
	b, err := readBinary(bin)
	if err != nil {
		return Image{}, err
	}
	img, err := image([]entry{{path: path, mode: 0o755, data: b}}, v1.Config{Entrypoint: []string{path}, Cmd: args})
	return Image{Ref: ref, Img: img}, err
}

// TraefikImage is the sites' gateway: the static traefik binary as
// /usr/local/bin/traefik (the official image's entrypoint) with a writable
// /tmp.
func TraefikImage(bin string) (Image, error) {
	b, err := readBinary(bin)
	if err != nil {
		return Image{}, err
	}
	const path = "/usr/local/bin/traefik"
	es := []entry{{path: "/usr", dir: true, mode: 0o755}, {path: "/usr/local", dir: true, mode: 0o755},
		{path: "/usr/local/bin", dir: true, mode: 0o755}, {path: path, mode: 0o755, data: b},
		{path: "/tmp", dir: true, mode: 0o1777}}
	img, err := image(es, v1.Config{Entrypoint: []string{path}})
	return Image{Ref: TraefikRef, Img: img}, err
}

// BusyboxImage is busybox-static with a symlink per applet the checks use.
func BusyboxImage(bin string) (Image, error) {
	b, err := readBinary(bin)
	if err != nil {
		return Image{}, err
	}
	es := []entry{{path: "/bin", dir: true, mode: 0o755}, {path: "/bin/busybox", mode: 0o755, data: b},
		{path: "/tmp", dir: true, mode: 0o1777}}
	for _, a := range []string{"sh", "nslookup", "nc", "wget", "ping", "sleep", "cat", "ls", "ip", "hostname"} {
		es = append(es, entry{path: "/bin/" + a, link: "busybox"})
	}
	img, err := image(es, v1.Config{Entrypoint: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}})
	return Image{Ref: BusyboxRef, Img: img}, err
}
