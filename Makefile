# Sluice build. Everything needed comes from go.mod or from here: a machine
# with only Go and gcc (for -race) runs every target.
GO      ?= go
BIN     ?= bin
FUZZTIME ?= 15s
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build run test test-short vet fmt-check bench fuzz clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/sluice ./cmd/sluice

# The quickstart: a bundled sample of orders through filter and transforms,
# printed to stdout. Needs nothing external.
run: build
	$(BIN)/sluice run --progress never testdata/pipelines/quickstart.toml

# What CI runs (.ci/run sets SLUICE_INTEGRATION=1 so service-backed tests
# fail instead of skipping).
test: fmt-check vet
	$(GO) test -race -shuffle=on -timeout 30m ./...

test-short:
	$(GO) test -short ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Go benchmarks of the hot path, then the end-to-end run of docs/performance.md.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./runtime/jsonscan ./builtins/filter/... ./builtins/internal/template ./builtins/transform/...
	$(BIN)/sluice bench --events 1000000 --cores 1 testdata/pipelines/bench.toml
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
