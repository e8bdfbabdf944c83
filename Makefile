# Sluice build. Everything needed comes from go.mod or from here; a machine
# with only Go and gcc (for -race) runs every target.
GO ?= go
export GOFLAGS ?= -mod=readonly

.PHONY: build run test bench fuzz plugins vet fmt-check clean

build:
	$(GO) build -o bin/sluice ./cmd/sluice

clean:
	rm -rf bin .cache
