# hsmsim: a distributed HSM cluster simulator. `make` alone lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
BIN       := $(CURDIR)/bin
# Tools are installed at pinned versions into a per-user cache, one folder per
# version, so a fresh machine installs them and a warm one reuses them.
TOOLS     ?= $(HOME)/.cache/hsmsim/tools
BUF_VERSION              := v1.75.0
PROTOC_GEN_GO_VERSION    := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
STATICCHECK_VERSION      := v0.8.2

BUF          := $(TOOLS)/buf-$(BUF_VERSION)/buf
PGG_DIR      := $(TOOLS)/protoc-gen-go-$(PROTOC_GEN_GO_VERSION)
PGGG_DIR     := $(TOOLS)/protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)
STATICCHECK  := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
PROTO_PATH   := $(PGG_DIR):$(PGGG_DIR):$(PATH)

FUZZTIME  ?= 30s
TESTFLAGS ?=
# The chaos suite (test/chaos): seeds, and run length per seed.
CHAOS_SEEDS    ?= 3
CHAOS_DURATION ?= 5m
CHAOS_TIMEOUT  ?= 2h

.PHONY: help
help: ## Show this list of targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build every binary into ./bin.
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/...

.PHONY: test
test: ## Run every test with the race detector (Wycheproof vectors from ../shared when present).
	$(GO) test -race -count=1 $(TESTFLAGS) ./...

.PHONY: lint
lint: $(BUF) $(STATICCHECK) ## gofmt, go vet, buf lint and staticcheck.
	@out=$$(git ls-files -co --exclude-standard '*.go' | grep -v '\.pb\.go$$' | xargs -r gofmt -l); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(BUF) lint
	$(STATICCHECK) ./...

.PHONY: proto
proto: $(BUF) $(PGG_DIR)/protoc-gen-go $(PGGG_DIR)/protoc-gen-go-grpc ## Regenerate the protobuf code next to the .proto files.
	PATH=$(PROTO_PATH) $(BUF) generate

.PHONY: verify-proto
verify-proto: proto ## Regenerate and fail if the committed generated code differs.
	@if [ -n "$$(git status --porcelain -- proto)" ]; then \
	  echo "generated protobuf code is out of date; run 'make proto' and commit:"; \
	  git status --porcelain -- proto; git diff --stat -- proto; exit 1; fi

.PHONY: run
run: build ## Start the local deployment in the foreground (hsmctl up).
	$(BIN)/hsmctl up

# make bench: where the fresh deployment lives, and how long each
# hsmctl bench workload is measured.
BENCH_DIR      ?= /tmp/hsmsim-bench
BENCH_DURATION ?= 10s
# The hsmctl bench workloads: Encrypt 64 B to a custom key store key against
# both floors (in-process, and a process of its own) at concurrency 64 and 1,
# GenerateDataKey and Decrypt, CreateKey.
BENCH_RUNS := "--op encrypt --concurrency 64 --floor --floor-process --duration $(BENCH_DURATION)" \
	"--op encrypt --concurrency 1 --floor --floor-process --duration $(BENCH_DURATION)" \
	"--op generate-data-key --concurrency 64 --duration $(BENCH_DURATION)" \
	"--op decrypt --concurrency 64 --duration $(BENCH_DURATION)" \
	"--op create-key --concurrency 32 --requests 2000"

.PHONY: bench
bench: build ## Go benchmarks (6 counts each; compare medians with benchstat), then hsmctl bench on a fresh local deployment, into bench.txt.
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -count 6 ./cryptocore/ | tee bench.txt
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -benchtime 2000x -count 6 ./node/ | tee -a bench.txt
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -count 6 ./kmsproxy/ ./kmsproxy/sigv4/ ./internal/loadgen/ | tee -a bench.txt
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -benchtime 20000x -count 3 ./cluster/client/ | tee -a bench.txt
	-$(BIN)/hsmctl down --dir $(BENCH_DIR)/deployment >/dev/null 2>&1
	rm -rf $(BENCH_DIR) && mkdir -p $(BENCH_DIR)
	$(BIN)/hsmctl up --detach --dir $(BENCH_DIR)/deployment --output json > $(BENCH_DIR)/up.json
	set -o pipefail; trap '$(BIN)/hsmctl down --dir $(BENCH_DIR)/deployment >/dev/null' EXIT; \
	  cks=$$(sed -n 's/.*"custom_key_store_id": "\(.*\)".*/\1/p' $(BENCH_DIR)/up.json); \
	  for args in $(BENCH_RUNS); do \
	    echo "== hsmctl bench --custom-key-store-id $$cks $$args"; \
	    $(BIN)/hsmctl bench --dir $(BENCH_DIR)/deployment --custom-key-store-id $$cks --quiet $$args || exit 1; \
	  done | tee -a bench.txt

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s).
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

.PHONY: chaos
chaos: ## Chaos suite: CHAOS_SEEDS runs (3) of CHAOS_DURATION (5m) of faults on real HSMs; anomalies fail it.
	$(GO) test -count=1 -v -timeout $(CHAOS_TIMEOUT) -run '^TestChaos$$' ./test/chaos/ -chaos.seeds=$(CHAOS_SEEDS) -chaos.duration=$(CHAOS_DURATION)

.PHONY: chaos-ci
chaos-ci: ## The short chaos suite CI runs: 3 seeds x 60 s.
	$(GO) test -count=1 -v -timeout 20m -run '^TestChaos$$' ./test/chaos/ -chaos.seeds=3 -chaos.duration=60s

# Containers (deploy/): images FROM scratch holding static binaries built
# here, so that nothing is pulled; IMAGE_TAG tags them, COMPOSE_PROJECT and
# HSMSIM_KMS_PORT name the deployment and its port on 127.0.0.1.
IMAGE_TAG       ?= dev
COMPOSE_PROJECT ?= hsmsim
HSMSIM_KMS_PORT ?= 4599
COMPOSE_ENV     := IMAGE_TAG=$(IMAGE_TAG) COMPOSE_PROJECT=$(COMPOSE_PROJECT) HSMSIM_KMS_PORT=$(HSMSIM_KMS_PORT)

.PHONY: images
images: ## Build the images hsmsim/{hsmd,kmsproxy,hsmctl}:IMAGE_TAG (FROM scratch, static binaries).
	GO=$(GO) IMAGE_TAG=$(IMAGE_TAG) scripts/build-images.sh

.PHONY: compose-up
compose-up: images ## Start the container deployment (deploy/compose.yaml); returns once its key store is connected.
	$(COMPOSE_ENV) scripts/compose.sh up

.PHONY: compose-down
compose-down: ## Remove the container deployment: containers, networks and volumes.
	$(COMPOSE_ENV) scripts/compose.sh down

.PHONY: clean
clean: ## Remove built binaries.
	rm -rf $(BIN)

$(BUF):
	GOBIN=$(dir $@) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(PGG_DIR)/protoc-gen-go:
	GOBIN=$(PGG_DIR) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(PGGG_DIR)/protoc-gen-go-grpc:
	GOBIN=$(PGGG_DIR) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(STATICCHECK):
	GOBIN=$(dir $@) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
