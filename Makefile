# ning: latency-aware scheduling for Kubernetes edge clusters.
GO        ?= go
BIN       ?= bin/ning
PKGS      ?= ./...
GOLANGCI  ?= $(shell command -v golangci-lint 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/golangci-lint)
FUZZTIME  ?= 10s
SHELL     := /bin/bash
.SHELLFLAGS := -o pipefail -c

.PHONY: all build test test-quality lint verify bench demo fuzz clean help

all: build

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/ning
	$(GO) build -o $(BIN) ./cmd/ning

test: ## vet, run every test with the race detector, then the planner quality check
	$(GO) vet $(PKGS)
	$(GO) test -race -short -count=1 $(PKGS)
	$(MAKE) test-quality

test-quality: ## planner vs exact optimum over 1,000 random instances and the examples (prints the gaps)
	$(GO) test -count=1 -run 'TestPlannerQuality|TestExamplesPlanQuality' -v ./internal/placement ./internal/cli | grep -E 'gap|^(ok|FAIL|---)'

lint: ## gofmt, go vet and golangci-lint (.golangci.yml)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo 'gofmt would change the files above'; exit 1)
	$(GO) vet $(PKGS)
	@if [ -x "$(GOLANGCI)" ]; then $(GOLANGCI) run $(PKGS); else echo "golangci-lint not installed: skipped (.ci/run installs it)"; fi

verify: ## check that go.mod is tidy and the code is formatted
	$(GO) mod tidy -diff
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo 'gofmt needed'; exit 1)

bench: ## run the benchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

fuzz: ## run each fuzz target for FUZZTIME
	$(GO) test -run '^$$' -fuzz '^FuzzParseSpec$$' -fuzztime $(FUZZTIME) ./internal/topology
	$(GO) test -run '^$$' -fuzz '^FuzzParseCSVMatrix$$' -fuzztime $(FUZZTIME) ./internal/topology
	$(GO) test -run '^$$' -fuzz '^FuzzParseConstraints$$' -fuzztime $(FUZZTIME) ./internal/placement

demo: build ## until the embedded-cluster demo lands: plan the edge-city example
	$(BIN) place -f examples/edge-city.yaml --replicas 4

clean: ## remove build output
	rm -rf bin
