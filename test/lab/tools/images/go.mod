// The lab's container images, built without Docker by go-containerregistry:
// ning (as the Dockerfile describes it), pause, an HTTP workload and busybox.
// A module of its own so that the main go.mod keeps its OpenTelemetry
// versions (go-containerregistry would raise them).
module github.com/ning-edge/ning/test/lab/tools/images

go 1.26.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/google/go-containerregistry v0.20.6
)

require (
	github.com/containerd/stargz-snapshotter/estargz v0.16.3 // indirect
	github.com/klauspost/compress v1.18.0 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	github.com/vbatts/tar-split v0.12.1 // indirect
	golang.org/x/sync v0.15.0 // indirect
)
