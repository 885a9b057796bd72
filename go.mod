module github.com/ning-edge/ning

go 1.26

require (
	github.com/google/go-cmp v0.7.0
	github.com/spf13/cobra v1.9.1
	go.yaml.in/yaml/v3 v3.0.6
	google.golang.org/protobuf v1.36.12
	k8s.io/utils v0.0.0-20250604170112-4c0f3b243397
)

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.6 // indirect
)
