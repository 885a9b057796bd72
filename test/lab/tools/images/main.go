// Command images writes the lab's OCI image archives (docker-save tarballs,
// which `ctr -n k8s.io images import` reads) with go-containerregistry:
//
//	ning.tar      the ning binary as the Dockerfile packages it (distroless
//	              static's files, user 65532, entrypoint /usr/local/bin/ning)
//	pause.tar     the pod sandbox: a static binary that waits for TERM
//	workload.tar  an HTTP server with a fixed service time and a concurrency limit
//	busybox.tar   busybox-static, for checks from inside pods (nslookup, nc, wget)
//	traefik.tar   the sites' gateway: Traefik v3 (test/lab/tools/traefik), with -traefik
//
// Usage: images -out DIR -ning BIN -pause BIN -workload BIN [-busybox /bin/busybox] [-traefik BIN]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	out := flag.String("out", "bin/lab/images", "directory for the archives")
	ningBin := flag.String("ning", "", "static ning binary")
	pauseBin := flag.String("pause", "", "static pause binary")
	workloadBin := flag.String("workload", "", "static workload binary")
	busyboxBin := flag.String("busybox", "/bin/busybox", "static busybox binary (busybox-static)")
	traefikBin := flag.String("traefik", "", "static traefik binary (empty: no traefik image)")
	dockerfile := flag.String("dockerfile", "Dockerfile", "the Dockerfile the ning image follows")
	flag.Parse()
	bins := map[string]string{"ning": *ningBin, "pause": *pauseBin, "workload": *workloadBin, "busybox": *busyboxBin}
	if *traefikBin != "" {
		bins["traefik"] = *traefikBin
	}
	if err := run(*out, *dockerfile, bins); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(out, dockerfile string, bins map[string]string) error {
	for name, path := range bins {
		if path == "" {
			return fmt.Errorf("-%s: no binary given", name)
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("-%s: %w", name, err)
		}
	}
	df, err := os.ReadFile(dockerfile)
	if err != nil {
		return err
	}
	spec, err := ParseDockerfile(string(df))
	if err != nil {
		return fmt.Errorf("%s: %w", dockerfile, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	builds := []struct {
		name string
		img  func() (Image, error)
	}{
		{"ning", func() (Image, error) { return NingImage(spec, bins["ning"]) }},
		{"pause", func() (Image, error) { return SingleBinaryImage(PauseRef, bins["pause"], "/pause", nil) }},
		{"workload", func() (Image, error) {
			return SingleBinaryImage(WorkloadRef, bins["workload"], "/workload", nil)
		}},
		{"busybox", func() (Image, error) { return BusyboxImage(bins["busybox"]) }},
		{"traefik", func() (Image, error) { return TraefikImage(bins["traefik"]) }},
	}
	for _, b := range builds {
		if _, ok := bins[b.name]; !ok {
			continue
		}
		img, err := b.img()
		if err != nil {
			return fmt.Errorf("%s image: %w", b.name, err)
		}
		file := filepath.Join(out, b.name+".tar")
		if err := img.Write(file); err != nil {
			return fmt.Errorf("%s image: %w", b.name, err)
		}
		fmt.Printf("%s %s\n", file, img.Ref)
	}
	return nil
}
