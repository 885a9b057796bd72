# The lab: a real multi-site cluster on this machine (docs/lab.md). Included
# by the Makefile. Everything it builds lands in LAB_BIN; what is built is not
# rebuilt (delete LAB_BIN to start over).
LAB_BIN      ?= bin/lab
LAB_TOPOLOGY ?= test/lab/topology.yaml
LAB_TOOLS    := test/lab/tools
# The node binaries and the small images' binaries build with the flags of an
# ordinary `go build` (so the shared build cache serves the Kubernetes
# packages); the ning image's binary is linked statically by the external
# linker, which keeps that cache too (CGO_ENABLED=0 would recompile every
# package). Its name lookups use Go's own resolver (the image's
# nsswitch.conf says "files dns").
# Binaries built outside Kubernetes' own build report v0.0.0-master: the
# version is stamped, as Kubernetes' release build does, so that the
# apiserver (in the ning binary that runs the lab) and the kubelets report
# v1.34.1 and Helm's kubeVersion checks pass.
LAB_K8S_VERSION := -X k8s.io/component-base/version.gitVersion=v1.34.1 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/component-base/version.gitTreeState=clean
LAB_GOBUILD  := $(GO) build -ldflags="-s -w $(LAB_K8S_VERSION)"
LAB_STATIC   := $(GO) build -ldflags='-s -w -linkmode external -extldflags "-static"'
LAB_SMALL    := CGO_ENABLED=0 $(GO) build -ldflags="-s -w"
LAB_K8S_BINS := kubelet kube-controller-manager kube-proxy

.PHONY: lab-bins images lab-up lab-down test-lab test-images

$(LAB_BIN)/kubelet $(LAB_BIN)/kube-controller-manager $(LAB_BIN)/kube-proxy: $(LAB_TOOLS)/k8s/go.mod
	@mkdir -p $(LAB_BIN)
	cd $(LAB_TOOLS)/k8s && $(LAB_GOBUILD) -o $(CURDIR)/$@ k8s.io/kubernetes/cmd/$(notdir $@)

$(LAB_BIN)/coredns: $(LAB_TOOLS)/coredns/go.mod
	@mkdir -p $(LAB_BIN)
	cd $(LAB_TOOLS)/coredns && $(LAB_GOBUILD) -o $(CURDIR)/$@ github.com/coredns/coredns

# The sites' gateway (docs/lab.md): Traefik v3 from its own module, static.
# A big build (about 2,500 packages: over an hour cold on a shared two-core
# machine), done once, and only for the lab benchmark: make test-lab does not
# need it.
$(LAB_BIN)/traefik: $(LAB_TOOLS)/traefik/go.mod
	@mkdir -p $(LAB_BIN)
	cd $(LAB_TOOLS)/traefik && CGO_ENABLED=0 $(GO) build -ldflags="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=v3.6.12" \
	  -o $(CURDIR)/$@ github.com/traefik/traefik/v3/cmd/traefik

lab-bins: $(addprefix $(LAB_BIN)/,$(LAB_K8S_BINS)) $(LAB_BIN)/coredns ## the lab's kubelet, kube-controller-manager, kube-proxy (k8s v1.34.1) and CoreDNS, built once into bin/lab

images: ## OCI image archives (ning, pause, HTTP workload, busybox; Traefik too once bin/lab/traefik is built) in bin/lab/images, built with go-containerregistry
	@mkdir -p $(LAB_BIN)/images
	$(LAB_STATIC) -o $(LAB_BIN)/ning ./cmd/ning 2>&1 | grep -v 'statically linked applications requires at runtime' || true
	@file $(LAB_BIN)/ning | grep -q 'statically linked' || { echo "$(LAB_BIN)/ning is not statically linked"; exit 1; }
	cd $(LAB_TOOLS)/images && $(LAB_SMALL) -o $(CURDIR)/$(LAB_BIN)/pause ./pause && \
	  $(LAB_SMALL) -o $(CURDIR)/$(LAB_BIN)/workload ./workload && \
	  $(GO) run . -out $(CURDIR)/$(LAB_BIN)/images -dockerfile $(CURDIR)/Dockerfile \
	    -ning $(CURDIR)/$(LAB_BIN)/ning -pause $(CURDIR)/$(LAB_BIN)/pause -workload $(CURDIR)/$(LAB_BIN)/workload \
	    $(if $(wildcard $(LAB_BIN)/traefik),-traefik $(CURDIR)/$(LAB_BIN)/traefik)

bench-images: $(LAB_BIN)/traefik ## the lab's images plus the Traefik gateway's, for the lab benchmark
	$(MAKE) images

test-images: ## the ning image matches the Dockerfile (user, entrypoint, files, labels)
	cd $(LAB_TOOLS)/images && $(GO) test -count=1 ./...

lab-up: lab-bins images ## (root) start the lab and leave it running; the last line is KUBECONFIG=<path>
	$(GO) build -ldflags="$(LAB_K8S_VERSION)" -o $(BIN) ./cmd/ning
	$(BIN) lab up --bin-dir $(LAB_BIN) --topology $(LAB_TOPOLOGY)

lab-down: ## (root) stop the lab and remove everything it created
	$(GO) build -o $(BIN) ./cmd/ning
	$(BIN) lab down

# The suite's whole output goes to LAB_LOG, its outline to the console; the
# recipe fails when go test does (not only when grep does).
LAB_LOG ?= /tmp/ning-test-lab.log
test-lab: lab-bins images test-images ## (root) the lab suite: ning from its Helm chart on real kubelets (test/lab); NING_REQUIRE_LAB=1 turns its skips into failures
	$(GO) build -ldflags="$(LAB_K8S_VERSION)" -o $(BIN) ./cmd/ning
	@{ NING_LAB_BIN=$(CURDIR)/$(LAB_BIN) NING_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -v -timeout 30m ./test/lab/ 2>&1; echo "test-lab: go test exit $$?"; } | \
	  tee $(LAB_LOG) | grep -E '^(=== RUN|\s*--- |ok|FAIL|PASS|panic|test-lab:)|_test.go:'
	@tail -1 $(LAB_LOG) | grep -qx 'test-lab: go test exit 0' || { echo "test-lab failed (whole output: $(LAB_LOG))"; exit 1; }

.PHONY: bench-lab test-bench-lab bench-images
LAB_BENCH_ENV = NING_LAB_BIN=$(CURDIR)/$(LAB_BIN) NING_BIN=$(CURDIR)/$(BIN)

bench-lab: lab-bins bench-images ## (root) the real-request benchmark on the lab: bench/lab.md, bench/lab.json and plots (about 25 min)
	$(GO) build -ldflags="$(LAB_K8S_VERSION)" -o $(BIN) ./cmd/ning
	@mkdir -p bench
	$(LAB_BENCH_ENV) NING_BENCH_REPORT=$(CURDIR)/bench $(GO) test -count=1 -v -timeout 60m -run '^TestBenchLab$$' ./test/lab/bench/ 2>&1 \
	  | tee /tmp/ning-bench-lab.log | grep -E '^(=== RUN|\s*--- |ok|FAIL|PASS|panic)|_test.go:'

test-bench-lab: lab-bins bench-images ## (root) CI's short lab benchmark: ning's p95 below the default scheduler's in a 60 s steady scenario
	$(GO) build -ldflags="$(LAB_K8S_VERSION)" -o $(BIN) ./cmd/ning
	$(LAB_BENCH_ENV) $(GO) test -count=1 -v -timeout 30m -run '^TestBenchLabSteady$$' ./test/lab/bench/ 2>&1 \
	  | tee /tmp/ning-test-bench-lab.log | grep -E '^(=== RUN|\s*--- |ok|FAIL|PASS|panic)|_test.go:'
