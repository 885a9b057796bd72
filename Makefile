# ning: latency-aware scheduling for Kubernetes edge clusters.
GO        ?= go
BIN       ?= bin/ning
PKGS      ?= ./...
GOLANGCI  ?= $(shell command -v golangci-lint 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/golangci-lint)
# A count, not a duration: in Go 1.26 a duration -fuzztime can fail a target
# with "context deadline exceeded" when a worker is busy at the deadline
# (go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME  ?= 50000x
BENCHSTAT_VERSION ?= v0.0.0-20260908200009-22c9c6c9d4da
# benchstat for bench-compare: installed like golangci-lint (.ci/run, pinned
# there), not a go.mod tool, so x/perf stays out of ning's module graph.
BENCHSTAT ?= $(shell command -v benchstat 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/benchstat)
BENCH     ?= .
BENCHPKGS ?= ./internal/...
COUNT     ?= 10
SHELL     := /bin/bash
.SHELLFLAGS := -o pipefail -c

.PHONY: all build test test-integration test-quality lint verify bench bench-go bench-compare demo fuzz clean help generate protoc-check test-mosquitto test-netns test-discover
.PHONY: manifests docs test-chart image kind-up ci-fresh

all: build

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/ning
	$(GO) build -o $(BIN) ./cmd/ning

# Packages that do not link k8s.io/kubernetes run with the race detector. The
# others (the scheduler, the in-process apiserver) run without it: kube-scheduler
# v1.34.1 has a data race of its own (handleSchedulingFailure against the
# queue's moveToBackoffQ) that -race reports in any test that leaves a pod
# unschedulable, and a race build of the apiserver would double CI's time.
UNIT_DEPS = $(GO) list -f '{{.ImportPath}} {{join .Deps " "}}' $(PKGS) | grep -v '^[^ ]*/test/'
RACE_PKGS = $(shell $(UNIT_DEPS) | grep -v ' k8s.io/kubernetes/' | cut -d' ' -f1)
K8S_PKGS  = $(shell $(UNIT_DEPS) | grep ' k8s.io/kubernetes/' | cut -d' ' -f1)
# The race detector needs cgo, so a C compiler. With only Go installed (no gcc)
# the unit tests run without it and say so; .ci/run installs gcc, so CI always
# runs them with -race.
RACE = $(if $(filter 1,$(shell $(GO) env CGO_ENABLED)),-race,)

test: ## vet; unit tests (with -race where a C compiler is found); integration tests; planner quality
	$(GO) vet $(PKGS)
	@[ -n "$(RACE)" ] || echo "no C compiler (cgo is off): unit tests run without -race; apt-get install -y gcc libc6-dev for it"
	$(GO) test $(RACE) -short -count=1 $(RACE_PKGS)
	$(GO) test -short -count=1 $(K8S_PKGS)
	$(MAKE) test-integration
	$(MAKE) test-quality

test-integration: ## the real scheduler, controllers and apiserver together, and the ning binary
	$(GO) test -count=1 -v -timeout 20m -skip 'TestPartitionedSite|TestPartitionOrDeath|TestDemoNetns' ./test/... 2>&1 | grep -E '^(=== RUN|\s*--- |ok|FAIL|PASS|panic)|_test.go:'


test-quality: ## planner vs exact optimum: 1,000 random instances, the harder families, past misses, the examples (prints the gaps)
	$(GO) test -count=1 -run 'TestPlannerQuality|TestPlannerFamilies|TestPlannerRegressions|TestExamplesPlanQuality' -v ./internal/placement ./internal/cli | grep -E 'gap|^(ok|FAIL|---)'

lint: ## gofmt, go vet and golangci-lint (.golangci.yml)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo 'gofmt would change the files above'; exit 1)
	$(GO) vet $(PKGS)
	@if [ -x "$(GOLANGCI)" ]; then $(GOLANGCI) run $(PKGS); else echo "golangci-lint not installed: skipped (.ci/run installs it)"; fi

verify: protoc-check ## check that go.mod is tidy, the code is formatted and generated code is current
	$(GO) mod tidy -diff
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo 'gofmt needed'; exit 1)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  $(MAKE) --no-print-directory GENOUT="$$tmp" generate >/dev/null && \
	  diff -ru $(PROTO_PKG) "$$tmp/$(PROTO_PKG)" --exclude='*.proto' && echo "generated code is current"
	$(GO) test -count=1 -run 'TestManifestsUpToDate|TestValuesDocumented' ./test/chart
	$(GO) test -count=1 -run 'TestFlagsReference' ./internal/cli

# Protobuf: protoc from the system (apt-get install -y protobuf-compiler),
# protoc-gen-go built from the google.golang.org/protobuf version in go.mod, so
# generator and runtime always match.
PROTOC        ?= protoc
PROTO_DIR     := api/proto
PROTO_PKG     := api/proto/ning/v1
PROTOS        := $(PROTO_DIR)/ning/v1/ning.proto
GENOUT        ?= .
PROTOC_GEN_GO := bin/protoc-gen-go

protoc-check:
	@command -v $(PROTOC) >/dev/null || { echo "protoc not found: install it (apt-get install -y protobuf-compiler) to generate or verify $(PROTO_PKG)"; exit 1; }

$(PROTOC_GEN_GO): go.mod
	$(GO) build -o $@ google.golang.org/protobuf/cmd/protoc-gen-go

generate: protoc-check $(PROTOC_GEN_GO) ## regenerate the protobuf Go code in api/proto/ning/v1
	@mkdir -p $(GENOUT)
	$(PROTOC) -I $(PROTO_DIR) --plugin=protoc-gen-go=$(PROTOC_GEN_GO) \
	  --go_out=$(GENOUT) --go_opt=module=github.com/ning-edge/ning $(PROTOS)

bench: ## write bench/report.md and plots: throughput, extender, quality, planner time, demo, ingest, probe accuracy as root (about 15 min)
	@mkdir -p bench; rm -f bench/probe-accuracy.txt bench/probe-accuracy.failed bench/probe-accuracy.skipped
	@if [ "$$(id -u)" != 0 ]; then echo "make bench was not run as root (network namespaces need it)" > bench/probe-accuracy.skipped; \
	elif ! NING_NETNS_REPORT=$(CURDIR)/bench/probe-accuracy.txt $(GO) test -count=1 -v -run 'TestNetnsEndToEnd' ./internal/probe > bench/probe-accuracy.log 2>&1; then \
	  tail -40 bench/probe-accuracy.log; echo "the netns probe test failed: the report says so"; touch bench/probe-accuracy.failed; \
	elif [ ! -f bench/probe-accuracy.txt ]; then \
	  grep -m1 -E '_test.go:[0-9]+: .*skipped' bench/probe-accuracy.log | sed -E 's/^ *//' > bench/probe-accuracy.skipped; \
	  echo "the netns probe test skipped: $$(cat bench/probe-accuracy.skipped)"; fi
	skipped=$$(cat bench/probe-accuracy.skipped 2>/dev/null); \
	$(GO) run ./cmd/ning bench report --dir bench $$([ -f bench/probe-accuracy.txt ] && echo --probe-accuracy bench/probe-accuracy.txt) \
	  $$([ -f bench/probe-accuracy.failed ] && echo --probe-accuracy-failed) $${skipped:+"--probe-accuracy-skipped=$$skipped"}
	@rm -f bench/probe-accuracy.failed bench/probe-accuracy.skipped bench/probe-accuracy.log

bench-go: ## the Go benchmarks (planner, handlers, ingest); BENCH=regexp, BENCHPKGS=packages
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(BENCHPKGS)

bench-compare: ## benchstat table, OLD=<git rev> against the working tree, COUNT=10 runs interleaved (BENCH, BENCHPKGS)
	@[ -n "$(OLD)" ] || { echo "usage: make bench-compare OLD=<git rev> [BENCH=regexp] [BENCHPKGS=./internal/...] [COUNT=10]"; exit 2; }
	@[ -x "$(BENCHSTAT)" ] || { echo "benchstat not found: GOFLAGS= $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION) (as .ci/run does)"; exit 2; }
	@tmp=$$(mktemp -d); trap 'git worktree remove --force "$$tmp/old" 2>/dev/null; rm -rf "$$tmp"' EXIT; \
	git worktree add --detach -q "$$tmp/old" "$(OLD)" || exit 1; \
	for i in $$(seq $(COUNT)); do \
	  echo "run $$i of $(COUNT): $(OLD), then the working tree" >&2; \
	  (cd "$$tmp/old" && $(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count 1 $(BENCHPKGS)) >> "$$tmp/old.txt" || exit 1; \
	  $(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count 1 $(BENCHPKGS) >> "$$tmp/new.txt" || exit 1; \
	done; \
	"$(BENCHSTAT)" "old=$$tmp/old.txt" "new=$$tmp/new.txt"

print-benchstat-version:
	@echo $(BENCHSTAT_VERSION)

FUZZ_TARGETS = topology:FuzzParseSpec topology:FuzzParseCSVMatrix placement:FuzzParseConstraints \
  source:FuzzDecodeLatencyReport source:FuzzHandleMQTT source:FuzzDecodeCheckAll source:FuzzDecodeScores \
  discover:FuzzOTLPExport extender:FuzzFilterRequest extender:FuzzPrioritizeRequest extender:FuzzBindRequest demo:FuzzParseTraffic policy:FuzzMaxPerSite

fuzz: ## run each fuzz target for FUZZTIME (a count of inputs, or a duration)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== $${t#*:}"; \
	  $(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./internal/$${t%%:*}; \
	done

demo: ## all of ning on an embedded cluster: traffic shift and node loss, then a summary (about 45 s)
	$(GO) run ./cmd/ning demo

clean: ## remove build output
	rm -rf bin

MOSQUITTO ?= mosquitto
test-mosquitto: ## run the MQTT transport tests against a real Mosquitto on 127.0.0.1:18830
	@command -v $(MOSQUITTO) >/dev/null || { echo "mosquitto not found: apt-get install -y mosquitto"; exit 1; }
	@tmp=$$(mktemp -d); \
	  printf 'listener 18830 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\n' > $$tmp/mosquitto.conf; \
	  $(MOSQUITTO) -c $$tmp/mosquitto.conf > $$tmp/mosquitto.log 2>&1 & pid=$$!; \
	  for i in $$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/18830) 2>/dev/null && break; \
	    kill -0 $$pid 2>/dev/null || { cat $$tmp/mosquitto.log; echo "mosquitto exited"; exit 1; }; sleep 0.05; done; \
	  NING_MQTT_URL=mqtt://127.0.0.1:18830 $(GO) test $(RACE) -count=1 -v -run 'TestPublishSubscribeRoundTrip|TestMQTTSourceEndToEnd|TestPublisherMosquittoRestart|TestMosquittoPasswordFile|TestMosquittoACL' \
	    ./internal/mqtt ./internal/source > $$tmp/test.log 2>&1; rc=$$?; \
	  kill $$pid; wait $$pid 2>/dev/null; grep -E '^(=== RUN|\s*---|ok|FAIL|PASS)|latency|broker:' $$tmp/test.log; \
	  [ $$rc = 0 ] || tail -50 $$tmp/test.log; rm -rf $$tmp; exit $$rc

test-netns: ## as root: ning probe across emulated WAN links (NFQUEUE delayer, which outlives a link going down), every method, measured vs configured; a partitioned site through store, scheduler and rescheduler; a site cut off from the control plane against one lost whole; ning demo --netns (skips without root, ip or iptables)
	$(GO) test -count=1 -v -timeout 8m -run 'TestDelayerRoundTrip|TestDelayerLinkDown|TestNetnsEndToEnd|TestUDPEchoMeasuresConfiguredDelay' ./internal/netem ./internal/probe
	$(GO) test -count=1 -v -timeout 5m -run 'TestNetnsProbersThroughBroker' ./internal/demo/netns
	$(GO) test -count=1 -v -timeout 12m -run 'TestPartitionedSite|TestPartitionOrDeath|TestDemoNetns' ./test/integration 2>&1 | grep -E '^(=== RUN|\s*--- |ok|FAIL|PASS|panic)|_test.go:'

PROMETHEUS ?= $(shell command -v prometheus 2>/dev/null || echo /usr/bin/prometheus)
test-discover: ## traffic discovery against a real Prometheus (fails, not skips, without apt-get install -y prometheus)
	@test -x "$(PROMETHEUS)" || { echo "prometheus not found: apt-get install -y prometheus"; exit 1; }
	NING_PROMETHEUS=$(PROMETHEUS) $(GO) test -count=1 -v -run 'TestPrometheus|TestDiscoverer|TestProbeJob|TestOTLP|TestDiscover' \
	  ./internal/discover ./internal/cli 2>&1 | grep -E '^(=== RUN|\s*---|ok|FAIL|PASS)|req/s|rates'

# The Helm chart (deploy/helm/ning), the plain manifests rendered from it and
# the generated reference docs. Helm is the Go module (helm.sh/helm/v3, pinned
# in go.mod): no helm binary needed.
manifests: ## render deploy/manifests/ning.yaml from the Helm chart
	$(GO) test -count=1 -run 'TestManifestsUpToDate' ./test/chart -update

docs: manifests ## regenerate docs/reference (every command's flags, the chart's values)
	$(GO) test -count=1 -run 'TestValuesDocumented' ./test/chart -update
	$(GO) test -count=1 -run 'TestFlagsReference' ./internal/cli -update-docs

test-chart: ## helm lint and template, every object applied to a real apiserver (also part of make test)
	$(GO) test -count=1 -v ./test/chart 2>&1 | grep -E '^(=== RUN|\s*--- |ok|FAIL|PASS|panic)|_test.go:'

ci-fresh: ## as root: debootstrap a new Debian, then make test and make demo with only Go, then .ci/run (about 60 min)
	bash .ci/fresh

# Container image: needs Docker or Podman (BuildKit); not run in CI.
DOCKER ?= docker
IMAGE  ?= ghcr.io/ning-edge/ning:dev
image: ## build the container image IMAGE (static binary on distroless/static, nonroot)
	$(DOCKER) build --build-arg VERSION=$(lastword $(subst :, ,$(IMAGE))) -t $(IMAGE) .

kind-up: ## kind cluster with zones, Traefik, Prometheus and ning (needs docker, kind, kubectl, helm; not run in CI)
	IMAGE=$(IMAGE) deploy/kind/up.sh

CHROMIUM ?= $(shell command -v chromium 2>/dev/null || echo /usr/bin/chromium)
.PHONY: test-dashboard
test-dashboard: ## the dashboard page in headless Chromium (fails, not skips, without apt-get install -y chromium); writes artefacts/dashboard.png, artefacts/dashboard-replicas-stacked.png, artefacts/dashboard-topology.png, artefacts/dashboard-explain.png, artefacts/dashboard-zones.png and artefacts/dashboard-measured.png
	@test -x "$(CHROMIUM)" || { echo "chromium not found: apt-get install -y chromium"; exit 1; }
	NING_REQUIRE_CHROMIUM=1 NING_CHROMIUM=$(CHROMIUM) NING_ARTEFACTS=$(CURDIR)/artefacts \
	  $(GO) test -count=1 -v -run 'TestBrowser' ./internal/dashboard 2>&1 | grep -E '^(=== RUN|\s*---|ok|FAIL|PASS)|screenshot|_test.go:'
include test/lab/lab.mk
