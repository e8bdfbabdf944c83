# Sluice build. Everything needed comes from go.mod or from here: a machine
# with only Go and gcc (for -race) runs every target.
GO      ?= go
BIN     ?= bin
FUZZTIME ?= 15s
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build plugins run test test-short vet fmt-check bench fuzz clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/sluice ./cmd/sluice

# First-party WASM plugins: every Go plugin (plugins/NAME/main.go) built by
# the CLI to plugins/NAME/NAME.wasm, only when its sources, the plugins'
# shared code or the SDK changed (make -W FILE plugins shows what a change
# rebuilds). The C plugin's module is committed; with the wasm32 C toolchain
# installed (plugins/case-c/build.sh --check names what is missing) it is
# rebuilt when its source changes and compared, and a module that differs
# (another clang) must pass the plugin's tests.
GO_PLUGINS := $(patsubst plugins/%/main.go,%,$(wildcard plugins/*/main.go))
PLUGIN_DEPS := $(shell find sdk plugins/internal -name '*.go' ! -name '*_test.go') sdk/go.mod plugins/go.mod plugins/go.sum

define go_plugin
plugins/$(1)/$(1).wasm: $$(filter-out %_test.go,$$(wildcard plugins/$(1)/*.go)) $$(PLUGIN_DEPS) | build
	GOFLAGS=-mod=mod $$(BIN)/sluice plugin build plugins/$(1)
endef
$(foreach p,$(GO_PLUGINS),$(eval $(call go_plugin,$(p))))

plugins: $(foreach p,$(GO_PLUGINS),plugins/$(p)/$(p).wasm) $(BIN)/case-c.checked

$(BIN)/case-c.checked: plugins/case-c/src/case.c plugins/case-c/build.sh plugins/case-c/case-c.wasm | build
	@if plugins/case-c/build.sh --check; then \
		plugins/case-c/build.sh $(CURDIR)/$(BIN)/case-c.wasm; \
		if cmp -s $(BIN)/case-c.wasm plugins/case-c/case-c.wasm; then echo "plugins/case-c: rebuilt, same bytes as the committed module"; \
		else echo "plugins/case-c: the rebuilt module differs from the committed one; testing it"; \
			(cd plugins && $(GO) test -count 1 -run 'TestWASM|TestRebuild' ./case-c); fi && touch $@; \
	else echo "plugins/case-c: using the committed case-c.wasm"; fi

# The quickstart: a bundled sample of orders through a filter, a WASM
# plugin and a template, printed to stdout. Needs nothing external.
run: build plugins
	$(BIN)/sluice run --progress never testdata/pipelines/quickstart.toml

# What CI runs (.ci/run sets SLUICE_INTEGRATION=1 so service-backed tests
# fail instead of skipping).
# The SDK and the plugins are modules of their own; the plugins' module
# takes the repository by a replace, and -mod=mod lets it follow the root
# go.mod when a dependency moves.
test: fmt-check vet
	$(GO) test -race -shuffle=on -timeout 30m ./...
	cd sdk && $(GO) vet ./... && GOOS=wasip1 GOARCH=wasm $(GO) vet ./... && $(GO) test -race -shuffle=on ./...
	cd plugins && GOFLAGS=-mod=mod $(GO) vet ./... && GOFLAGS=-mod=mod $(GO) test -race -shuffle=on -timeout 20m ./...

test-short:
	$(GO) test -short ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Go benchmarks of the hot path, Kafka -> filter -> template -> Kafka on a
# local in-process cluster, then the end-to-end runs of docs/performance.md.
# The WASM figures (docs/abi.md's targets): Go guest, host overhead,
# second start (runtime/wasmhost), C guest and the plugins (plugins/), then
# the bench task with its template replaced by a WASM plugin (wasm-bench):
# compare its events/s with bench.toml's.
bench: build plugins
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./runtime/jsonscan ./builtins/filter/... ./builtins/internal/template ./builtins/transform/...
	$(GO) test -run '^$$' -bench 'GoGuestUpper|GoGuestPass|HostOverhead|SecondStart' -benchmem -count 1 ./runtime/wasmhost
	cd plugins && GOFLAGS=-mod=mod $(GO) test -run '^$$' -bench . -benchmem -count 1 ./...
	$(GO) test -run '^$$' -bench KafkaPipeline -benchtime 200000x -count 1 ./builtins/internal/kafkae2e
	$(BIN)/sluice bench --events 1000000 --cores 1 testdata/pipelines/bench.toml
	$(BIN)/sluice bench --events 1000000 --cores 1 testdata/pipelines/wasm-bench.toml
	$(BIN)/sluice bench --events 1000000 testdata/pipelines/bench.toml

# Every fuzz target for FUZZTIME each (go test -fuzz takes one target per run).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

clean:
	rm -rf $(BIN) .cache
