# isoguard: runtime-level isolation enforcer for Windows container nodes.
# `make help` lists the targets.

SHELL := /bin/bash
GO ?= go
export ISOGUARD_CACHE ?= $(HOME)/.cache/isoguard
OUT ?= $(CURDIR)/out
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/isoguard/isoguard/version.Version=$(VERSION) -X github.com/isoguard/isoguard/version.Revision=$(REVISION)
FUZZTIME ?= 10s
FUZZEXECS ?= 1000000
FUZZPARALLEL ?= 2
FUZZMINTIME ?= 10s
# Every fuzz target, package:Target (docs/fuzzing.md).
FUZZ_TARGETS := \
	./internal/bundle:FuzzSpec \
	./internal/cri:FuzzParseRole \
	./shim/internal/bootstrap:FuzzParseStartInput \
	./shim/internal/bootstrap:FuzzParseAnswer \
	./policy:FuzzEvaluate \
	./policy:FuzzOptions \
	./policy:FuzzParse \
	./policy:FuzzHostPath

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build both binaries for Linux into out/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $(OUT)/ ./cmd/...

.PHONY: build-windows
build-windows: ## Cross-compile both binaries for Windows into out/windows/
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $(OUT)/windows/ ./cmd/...

.PHONY: deps
deps: ## Install what the tests and the demo need (apt, go install; cached in $ISOGUARD_CACHE)
	bash scripts/deps.sh linux

.PHONY: lint
lint: ## gofmt, go vet for GOOS=linux and GOOS=windows (all build tags), PowerShell syntax
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	GOOS=windows $(GO) vet ./...
	GOOS=windows $(GO) vet -tags functional ./...
	GOOS=windows $(GO) vet -tags integration ./...
	bash deploy/windows/check-syntax.sh

.PHONY: unit
unit: ## Unit tests (no containerd needed)
	$(GO) test -count=1 ./...

# run-fuzz runs every target for $(1) (a -fuzztime), printing each one's wall time.
define run-fuzz
	@missing=$$(grep -rhoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' . | sed 's/^func //' | sort -u | \
		while read -r f; do case " $(FUZZ_TARGETS) " in *":$$f "*) ;; *) echo "$$f";; esac; done); \
	if [ -n "$$missing" ]; then echo "fuzz targets missing from FUZZ_TARGETS: $$missing"; exit 1; fi
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; start=$$(date +%s); \
		echo "== $$name ($$pkg): -fuzztime $(1)"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(1) -fuzzminimizetime $(FUZZMINTIME) -parallel $(FUZZPARALLEL); \
		echo "== $$name: $$(( $$(date +%s) - start )) s"; \
	done
endef

.PHONY: fuzz-short
fuzz-short: ## Every fuzz target briefly (FUZZTIME each, default 10s); part of make test
	$(call run-fuzz,$(FUZZTIME))

.PHONY: fuzz
fuzz: ## Every fuzz target for FUZZEXECS executions each (default 1000000, FUZZPARALLEL workers); not in make test
	$(call run-fuzz,$(FUZZEXECS)x)

.PHONY: integration
integration: deps build ## Integration tests on real containerd 1.6/1.7/2.4 + runc
	$(GO) test -count=1 -tags integration -timeout 25m -v ./integration/...

.PHONY: test-cri
test-cri: deps build ## The whole CRI tier: isoguard under containerd's CRI plugin (crictl, critest in audit and enforce mode, containerd 2.4 and 1.7)
	ISOGUARD_CRI_FULL=1 bash scripts/test-cri.sh

.PHONY: wine-test
wine-test: ## Windows tests under wine: the wrapper against the real runhcs v0.14.1 (installs wine, mingw)
	bash scripts/test-windows.sh

.PHONY: test
test: lint build-windows unit fuzz-short integration wine-test ## Every test: lint, Windows build, unit, a short fuzz run, real containerd, real runhcs under wine
	@echo "make test: all passed"

.PHONY: bench
bench: deps build ## Benchmarks (results and method: docs/benchmarks.md)
	bash scripts/bench.sh

.PHONY: stress
stress: deps build ## Load test: 100 pods through isoguard on containerd's CRI plugin beside the plain handlers (method and results: docs/benchmarks.md)
	bash scripts/stress.sh

.PHONY: demo
demo: deps ## Pods through isoguard on a private containerd with CRI (crictl, gVisor)
	bash scripts/demo.sh

.PHONY: clean
clean: ## Remove build output
	rm -rf $(OUT)
