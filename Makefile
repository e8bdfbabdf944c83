# Sluice build. Everything needed comes from go.mod or from here: a machine
# with only Go and gcc (for -race) runs every target.
GO      ?= go
BIN     ?= bin
FUZZTIME ?= 15s
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Build tags: TAGS=devkafka adds `sluice dev kafka`; no_kafka, no_sql,
# no_redis, no_nats, no_rabbitmq, no_mqtt (no_brokers: the last four) leave
# connector families out (docs/edge.md says what each saves); Go's own
# nethttpomithttp2 leaves HTTP/2 out of net/http.
TAGS    ?=
# The release binary: static (no cgo), stripped of the symbol table and
# DWARF (-s -w), no build paths (-trimpath), version stamped.
LDFLAGS := -s -w -X main.version=$(VERSION)
GOBUILD  = CGO_ENABLED=0 $(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)'
DIST    ?= dist
# What `make release` builds: GOOS/GOARCH[/GOARM].
PLATFORMS ?= linux/amd64 linux/arm64 linux/arm/7
SIZE_GOAL_MB := 20

.PHONY: all build release sizes test-arm test-arm-ci test-arm32-ci plugins run test test-root test-sdk test-plugins test-exprfork deadcode test-short vet lint fmt-check stress bench fuzz clean

all: build

build:
	$(GOBUILD) -o $(BIN)/sluice ./cmd/sluice

# Release binaries for every platform, named sluice-VERSION-OS-ARCH (arm:
# armv7, GOARM=7), and their SHA-256 checksums in dist/SHA256SUMS
# (sha256sum -c SHA256SUMS checks a download).
release:
	@set -e; rm -rf $(DIST); mkdir -p $(DIST); for p in $(PLATFORMS); do \
		os=$${p%%/*}; rest=$${p#*/}; arch=$${rest%%/*}; arm=; \
		case $$rest in */*) arm=$${rest#*/};; esac; \
		out=$(DIST)/sluice-$(VERSION)-$$os-$$arch$${arm:+v$$arm}; \
		echo "build $$out"; \
		GOOS=$$os GOARCH=$$arch GOARM=$$arm $(GOBUILD) -o $$out ./cmd/sluice; \
	done; \
	cd $(DIST) && sha256sum sluice-* >SHA256SUMS && cat SHA256SUMS && ls -l sluice-*

# The binary size of each build tag (docs/edge.md's table), linux/amd64
# unless GOARCH says otherwise: one release build per line.
SIZE_TAGS ?= devkafka - no_kafka no_sql no_redis no_nats no_rabbitmq no_mqtt no_brokers no_sql,no_brokers no_sql,no_redis,no_nats,no_rabbitmq no_kafka,no_sql,no_brokers nethttpomithttp2
sizes:
	@set -e; dir=$$(mktemp -d); trap 'rm -rf $$dir' EXIT; for t in $(SIZE_TAGS); do \
		[ "$$t" = - ] && t=; \
		$(MAKE) --no-print-directory build BIN=$$dir TAGS=$$t >/dev/null; \
		awk -v t="$${t:-(default)}" -v b=$$(stat -c %s $$dir/sluice) 'BEGIN { printf "%-45s %6.2f MB (%5.2f MiB)\n", t, b / 1e6, b / 1048576 }'; \
	done

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
# fail instead of skipping): every step below, each run even when an earlier
# one failed, then a summary naming every step that failed (and a non-zero
# exit if any did), so a root failure never hides the SDK's or the plugins'.
# The SDK and the plugins are modules of their own; the plugins' module
# takes the repository by a replace, and -mod=mod lets it follow the root
# go.mod when a dependency moves.
TEST_STEPS := fmt-check vet lint deadcode test-root test-sdk test-plugins test-exprfork

test:
	@failed=; for step in $(TEST_STEPS); do \
		echo "=== make $$step"; \
		$(MAKE) --no-print-directory $$step || failed="$$failed $$step"; \
	done; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	echo "make test: every step passed ($(TEST_STEPS))"

test-root:
	$(GO) test -race -shuffle=on -timeout 30m ./...

test-sdk:
	cd sdk && $(GO) test -race -shuffle=on ./...

test-plugins:
	cd plugins && GOFLAGS=-mod=mod $(GO) test -race -shuffle=on -timeout 20m ./...

# expr with its method lookups in a closed table (go.mod's replace;
# builtins/filter/condition/exprfork/SLUICE.md): a module of its own.
test-exprfork:
	cd builtins/filter/condition/exprfork && $(GO) vet ./... && $(GO) test -race -shuffle=on ./...

# The linker must be free to drop every method nothing calls. A reachable
# call of reflect's Method or MethodByName with a name it cannot see makes it
# keep every exported method of every type in the binary: 4.5 MB of 29.7
# when expr did it (exprfork/SLUICE.md). The linker's dependency dump marks
# such functions <ReflectMethod>; this fails on any, and names them.
deadcode:
	@dump=$$(mktemp); trap 'rm -f $$dump' EXIT; \
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags=-dumpdep -o /dev/null ./cmd/sluice 2>$$dump || { tail -20 $$dump; echo "make deadcode: the build failed"; exit 1; }; \
	grep -q ' -> ' $$dump || { echo "make deadcode: the linker printed no dependency dump (-ldflags=-dumpdep): cannot check"; exit 1; }; \
	out=$$(grep -o '[^ ]* <ReflectMethod>' $$dump | cut -d' ' -f1 | sort -u); \
	if [ -n "$$out" ]; then \
		echo "make deadcode: these functions call reflect's Method or MethodByName with a name the linker cannot see, so it keeps every exported method of every type (see builtins/filter/condition/exprfork/SLUICE.md for how expr's calls were removed):"; \
		echo "$$out"; exit 1; \
	fi; echo "make deadcode: no dynamic method lookup is reachable from ./cmd/sluice"

# Flake hunting (docs/contributing.md): COUNT runs of the tests of PKGS
# that match RUN, in shuffled order, under the race detector (RACE= for
# without), while BURNERS busy loops (default: all cores but one) keep the
# machine loaded. The burners are started and stopped here, even on Ctrl-C.
PKGS    ?= ./runtime/engine ./runtime/buffer ./runtime/wasmhost ./runtime/admin ./builtins/source/... ./builtins/sink/... ./builtins/internal/kafkae2e ./cmd/sluice
COUNT   ?= 20
RUN     ?= .
RACE    ?= -race
BURNERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n > 1 ? n - 1 : 1 )))
STRESS_TIMEOUT ?= 4h

stress:
	@pids=; for i in $$(seq $(BURNERS)); do (while :; do :; done) & pids="$$pids $$!"; done; \
	trap 'kill $$pids 2>/dev/null' EXIT INT TERM; \
	echo "make stress: $(COUNT) shuffled runs $(RACE) of $(PKGS) (-run '$(RUN)'), $(BURNERS) CPU burner(s):$$pids"; \
	SLUICE_RUN_QUARANTINED=1 $(GO) test $(RACE) -count=$(COUNT) -shuffle=on -run '$(RUN)' -timeout $(STRESS_TIMEOUT) $(PKGS)

# arm under emulation: for each of ARM_ARCHS (arm64; arm is armv7), the
# release build runs the quickstart (its output compared with
# testdata/pipelines/quickstart.want.jsonl), then ARM_PKGS' tests run as arm
# binaries. No binfmt is needed: qemu-user runs each binary explicitly, the
# test binaries through go test -exec, and what the tests start (the sluice
# binary, a test binary re-executing itself) through SLUICE_TEST_EXEC
# (runtime/testkit). Waits are scaled for the emulator's slowness; no -race
# (the race detector needs cgo and has no armv7 port). Needs qemu-user
# (Debian: apt-get install qemu-user); the services are used when running.
ARM_ARCHS ?= arm64 arm
ARM_PKGS  ?= ./runtime/... ./builtins/...
ARM_SCALE ?= 4
ARM_TESTFLAGS ?=
# What CI runs under emulation (arm64 only, -short, time bounded): the
# runtime (engine, buffer and its crash test, WASM host), the filters, the
# transforms but WASM's (the WASM host's tests cover the arm64 compiler), and
# the connectors that need no service. Left to make test-arm: the registry's
# checks (they compile every package again for arm64) and service-backed
# connectors.
ARM_CI_PKGS ?= ./runtime/... ./builtins/filter/... ./builtins/transform/complete ./builtins/transform/constant \
	./builtins/transform/function ./builtins/transform/partial ./builtins/transform/template \
	./builtins/source/file ./builtins/source/stdin ./builtins/source/http ./builtins/source/generate \
	./builtins/sink/file ./builtins/sink/http ./builtins/sink/stdout
QEMU_arm64 = qemu-aarch64
QEMU_arm   = qemu-arm

test-arm: plugins
	@command -v $(QEMU_arm64) >/dev/null || { echo "make test-arm: $(QEMU_arm64) not found: install qemu-user (apt-get install qemu-user)"; exit 1; }
	@set -e; for arch in $(ARM_ARCHS); do \
		qemu=$(QEMU_arm64); [ $$arch = arm ] && qemu=$(QEMU_arm); \
		bin=$(CURDIR)/$(BIN)/sluice-linux-$$arch; \
		echo "=== test-arm $$arch: build $$bin"; \
		GOARCH=$$arch GOARM=7 $(GOBUILD) -o $$bin ./cmd/sluice; \
		echo "=== test-arm $$arch: quickstart"; \
		$$qemu $$bin run --progress never --log-level warn testdata/pipelines/quickstart.toml >$(BIN)/quickstart-$$arch.jsonl; \
		cmp $(BIN)/quickstart-$$arch.jsonl testdata/pipelines/quickstart.want.jsonl || { echo "test-arm $$arch: the quickstart's output differs from testdata/pipelines/quickstart.want.jsonl"; diff $(BIN)/quickstart-$$arch.jsonl testdata/pipelines/quickstart.want.jsonl | head -20; exit 1; }; \
		echo "=== test-arm $$arch: go test $(ARM_PKGS)"; \
		start=$$(date +%s); \
		GOARCH=$$arch GOARM=7 CGO_ENABLED=0 SLUICE_TEST_BIN=$$bin SLUICE_TEST_EXEC=$$qemu SLUICE_TEST_TIMEOUT_SCALE=$(ARM_SCALE) \
			$(GO) test -exec $$qemu -count 1 -timeout 30m $(ARM_TESTFLAGS) $(ARM_PKGS); \
		echo "=== test-arm $$arch: passed in $$(( $$(date +%s) - start )) s"; \
	done

test-arm-ci:
	$(MAKE) --no-print-directory test-arm ARM_ARCHS=arm64 ARM_TESTFLAGS=-short ARM_PKGS='$(ARM_CI_PKGS)'
	$(MAKE) --no-print-directory test-arm32-ci

# What CI runs for 32-bit arm (armv7), where an int is 32 bits: the
# decoders of untrusted input, whose indexes and sizes past 2^31 read as
# negative ints there (docs/security.md), the size limits, the WASM host's
# checks of guest-given lengths, and the engine and what serves it (the
# disk buffer, delivery, the admin API: a tap crashed there on armv7). The
# WASM host's own tests (80 s on the interpreter) are left to make test-arm.
ARM32_CI_PKGS ?= ./runtime/wasmhost/instrument ./runtime/wasmhost/abi ./builtins/internal/binlog ./runtime/component ./runtime/jsonscan \
	./runtime/engine ./runtime/buffer ./runtime/delivery ./runtime/admin ./runtime/config ./runtime/runner
ARM32_GOTEST = GOARCH=arm GOARM=7 CGO_ENABLED=0 SLUICE_TEST_EXEC=$(QEMU_arm) SLUICE_TEST_TIMEOUT_SCALE=$(ARM_SCALE) \
	$(GO) test -exec $(QEMU_arm) -count 1
test-arm32-ci:
	@command -v $(QEMU_arm) >/dev/null || { echo "make test-arm32-ci: $(QEMU_arm) not found: install qemu-user (apt-get install qemu-user)"; exit 1; }
	$(ARM32_GOTEST) -short $(ARM32_CI_PKGS)
	$(ARM32_GOTEST) -run 'Past2To31|TestLoadChecksTheABI' ./runtime/wasmhost ./builtins/source/kafka

test-short:
	$(GO) test -short ./...

# go vet also reports on dependencies built from a local directory, which
# the wazero fork is (runtime/wasmhost/wazerofork/SLUICE.md): its upstream
# API has methods named like io's (ReadByte, Seek) with other signatures.
# VET_OWN fails on any line of vet's output but those about the fork (and
# the go command's "go: downloading" on a machine whose module cache lacks
# a test dependency).
VET_OWN = out=$$($(GO) vet ./... 2>&1); own=$$(printf '%s\n' "$$out" | grep -v -e '/wazerofork/' -e '^\# github.com/tetratelabs/wazero' -e '^go: downloading ' -e '^$$' || true); \
	if [ -n "$$own" ]; then printf '%s\n' "$$own"; exit 1; fi
vet:
	@$(VET_OWN)
	@# 32-bit arm (the armv7 release): what only a 32-bit int breaks, such as
	@# a constant past 2^31, which CI's arm64 run does not compile.
	@export GOARCH=arm GOARM=7 CGO_ENABLED=0 && $(VET_OWN)
	cd sdk && $(GO) vet ./... && GOOS=wasip1 GOARCH=wasm $(GO) vet ./...
	@cd plugins && export GOFLAGS=-mod=mod && $(VET_OWN)

# staticcheck, pinned by go.mod's tool directive (nothing to install). The
# SDK is checked as built for the host and for wasip1 together (-matrix), so
# code used by one build only is not reported unused; the plugins' module
# borrows the root's binary.
STATICCHECK = $$(cd $(CURDIR) && $(GO) tool -n staticcheck)
lint:
	$(GO) tool staticcheck ./...
	cd sdk && printf 'host:\nwasip1: GOOS=wasip1 GOARCH=wasm\n' | $(STATICCHECK) -matrix ./...
	cd plugins && GOFLAGS=-mod=mod $(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Go benchmarks of the hot path, Kafka -> filter -> template -> Kafka on a
# local in-process cluster, then the end-to-end runs of docs/performance.md.
# The WASM figures (docs/abi.md's targets): Go guest, host overhead,
# second start (runtime/wasmhost), C guest and the plugins (plugins/), then
# the bench task with its template replaced by a WASM plugin (wasm-bench):
# compare its events/s with bench.toml's.
bench: build plugins
	@awk -v b=$$(stat -c %s $(BIN)/sluice) 'BEGIN { printf "binary size: %.2f MB (%s, tags: %s), goal <= $(SIZE_GOAL_MB) MB (docs/edge.md)\n", b / 1e6, "$(shell $(GO) env GOOS)/$(shell $(GO) env GOARCH)", "$(or $(TAGS),none)" }'
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./runtime/jsonscan ./builtins/filter/... ./builtins/internal/template ./builtins/transform/...
	$(GO) test -run '^$$' -bench 'GoGuestUpper|GoGuestPass|HostOverhead|SecondStart' -benchmem -count 1 ./runtime/wasmhost
	cd plugins && GOFLAGS=-mod=mod $(GO) test -run '^$$' -bench . -benchmem -count 1 ./...
	$(GO) test -run '^$$' -bench KafkaPipeline -benchtime 200000x -count 1 ./builtins/internal/kafkae2e
	$(GO) test -run '^$$' -bench 'NATS|Redis' -benchtime 50000x -count 1 ./builtins/internal/natsredise2e
	$(GO) test -run '^$$' -bench . -benchtime 60000x -count 1 ./builtins/source/rabbitmq ./builtins/sink/rabbitmq ./builtins/source/mqtt ./builtins/sink/mqtt
	$(BIN)/sluice bench --events 1000000 --cores 1 testdata/pipelines/bench.toml
	$(BIN)/sluice bench --events 1000000 --cores 1 testdata/pipelines/wasm-bench.toml
	$(BIN)/sluice bench --events 1000000 testdata/pipelines/bench.toml
	# Memory and start (docs/edge.md, "Memory"): idle RSS without and with a Go WASM plugin, the time to the
	# first event of a first and a second start; the peak RSS of the runs above is printed with its goal.
	$(BIN)/sluice bench --startup testdata/pipelines/bench.toml
	$(BIN)/sluice bench --startup testdata/pipelines/wasm-bench.toml
	# Databases (docs/performance.md, "Databases"): CDC events/s from PostgreSQL and upsert rows/s into
	# PostgreSQL and MariaDB, each next to a plain program on the same driver (the floor).
	$(GO) test -run '^$$' -bench 'BenchmarkCDC' -benchtime 1x -count 1 ./builtins/source/postgrescdc
	# CDC rows/s from MariaDB's binlog next to the protocol package alone (docs/performance.md, "MariaDB change data capture").
	$(GO) test -run '^$$' -bench 'BenchmarkCDC' -benchtime 1x -count 1 ./builtins/source/mysqlcdc
	$(GO) test -run '^$$' -bench 'BenchmarkUpsert' -benchtime 1x -count 1 ./builtins/sink/postgres ./builtins/sink/mysql
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./builtins/internal/cdc

# Every fuzz target for FUZZTIME each (go test -fuzz takes one target per run),
# in the root module and in the SDK's and the plugins' own modules. A target
# that fails does not stop the others: the failures are listed at the end
# (each failing input is in its package's testdata/fuzz/TARGET/). Go 1.26's
# fuzzing coordinator may end a run that found nothing with "context
# deadline exceeded" as -fuzztime expires (golang.org/issue/75804, fixed in
# Go 1.27): without a failing input written, that is reported and not
# counted as a failure.
fuzz:
	@failed=; out=$$(mktemp); trap 'rm -f $$out' EXIT; for mod in . sdk plugins; do \
		for pkg in $$(cd $$mod && GOFLAGS=-mod=mod $(GO) list ./...); do \
			for f in $$(cd $$mod && GOFLAGS=-mod=mod $(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
				echo "fuzz $$pkg $$f"; \
				(cd $$mod && GOFLAGS=-mod=mod $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg) >$$out 2>&1; rc=$$?; cat $$out; \
				if [ $$rc -ne 0 ]; then \
					if grep -q 'context deadline exceeded' $$out && ! grep -q 'Failing input written' $$out; then \
						echo "make fuzz: $$pkg.$$f: Go's coordinator ended the run with its own deadline (golang.org/issue/75804), no failing input: not counted"; \
					else failed="$$failed $$pkg.$$f"; fi; \
				fi; \
			done; \
		done; \
	done; \
	if [ -n "$$failed" ]; then echo "make fuzz: FAILED:$$failed"; exit 1; fi; \
	echo "make fuzz: every target passed"

clean:
	rm -rf $(BIN) $(DIST) .cache
