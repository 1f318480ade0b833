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

.PHONY: bench
bench: ## Run the Go benchmarks (6 counts each; compare medians with benchstat) into bench.txt.
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -count 6 ./cryptocore/ | tee bench.txt
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -benchtime 2000x -count 6 ./node/ | tee -a bench.txt

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s).
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

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
