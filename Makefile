# ECRAE. `make run` and `make test` are the two commands; see README.md.
SHELL := /bin/bash
GO ?= go
GOBIN ?= $(shell $(GO) env GOPATH)/bin
BUF := $(GO) run github.com/bufbuild/buf/cmd/buf@v1.75.0
# Nova and the shim need Debian's interpreter, not whatever python3 is first on PATH.
PY := /usr/bin/python3

.PHONY: build run test test-go test-python deps bench bench-sim bench-scale bench-criu generate lint clean

# -buildvcs=auto: `ecrae version` shows the commit (this machine's go env
# sets -buildvcs=false; auto still builds outside a git checkout).
build:
	$(GO) build -buildvcs=auto -o bin/ecrae ./cmd/ecrae

# make run ARGS="--log-level debug --config ecrae.yaml"
run: build
	./bin/ecrae serve $(ARGS)

# Installs what the tests need (Debian packages, idempotent, as root), then runs every test.
test: deps build test-go test-python

deps:
	scripts/install-test-deps.sh
	scripts/criu.sh

test-go:
	$(GO) test -race -count=1 ./...

# Two runs: the integration tests load Nova's harness, which monkey-patches
# the whole process with eventlet; the shim's own tests must not run under it.
test-python: build
	$(PY) -m pytest -q -p no:cacheprovider nova-shim/tests
	$(PY) -m pytest -q -p no:cacheprovider integration

# Scoring in-process and over gRPC, the shim inside Nova's handlers, and the
# consolidation optimizer on the shared bin-packing benchmarks.
bench: build
	scripts/bench.sh
	scripts/bench-pack.sh

# The trace-driven simulator on the three shared PlanetLab days, side by side
# with CloudSim's policies.
bench-sim: build
	scripts/bench-sim.sh

# Issue 15: a generated cloud of 10,000 hosts and 100,000 instances through the
# real notification path (NATS JetStream → events → hostview): convergence,
# `ecrae hosts`, a plan, memory. BASE=<commit> runs that commit's binary too.
bench-scale:
	scripts/bench-scale.sh

# Container live migration with CRIU (root, LXC and podman, scripts/criu.sh):
# one migration per runtime, mode and working set (50, 200, 500 MB;
# ECRAE_CRIU_BENCH_MB).
bench-criu:
	scripts/criu.sh
	$(GO) test -run '^$$' -bench Migrate -benchtime 1x -timeout 30m ./agent/container/

generate:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0
	$(GO) install github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@v0.6.1-0.20240319094008-0393e58bdf10
	PATH="$(GOBIN):$$PATH" $(BUF) generate

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); if [ -n "$$out" ]; then echo "gofmt -l:"; echo "$$out"; exit 1; fi
	$(BUF) lint

clean:
	rm -rf bin
