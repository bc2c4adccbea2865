# Veil's build. Everything a target needs it installs or builds itself:
# `make setup` (run by demo and test) fetches host packages, containerd,
# virtiofsd, vhost-device-vsock and the guest kernel into $(CACHE).

SHELL := /bin/bash
GO ?= go
CACHE ?= $(CURDIR)/.cache
OUT ?= $(CURDIR)/_output
BIN := $(OUT)/bin
TOOLS := $(CACHE)/tools
export PATH := $(BIN):$(CACHE)/bin:$(TOOLS):$(PATH)

# Pinned generators. protoc comes from Debian bookworm's protobuf-compiler.
PROTOC_VERSION := 3.21.12
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_TTRPC_VERSION := v1.2.10
GOLANGCI_LINT_VERSION := v2.6.2

GOFLAGS_STATIC := -trimpath -ldflags '-s -w -extldflags -static'

.PHONY: all setup build guest kernel protoc-check generate generate-check lint test unit-test fuzz fuzz-smoke torture demo bench conformance k8s k8s-test clean

all: build

setup:
	@bash test/setup/setup.sh

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -o $(BIN)/veil ./cmd/veil
	$(GO) build -trimpath -o $(BIN)/containerd-shim-veil-v2 ./cmd/containerd-shim-veil-v2
	CGO_ENABLED=1 $(GO) build $(GOFLAGS_STATIC) -tags 'netgo osusergo seccomp' -o $(BIN)/veil-agent ./cmd/veil-agent

# k8s builds the pinned Kubernetes (kube-apiserver, kubelet, kubectl) and
# etcd the Kubernetes suite runs into $(CACHE)/kubernetes-<version>/bin
# (test/kubernetes/build: a Go module of its own), reusing Go's build
# cache; skipped while up to date.
k8s:
	@CACHE=$(CACHE) bash test/kubernetes/build/build.sh

# guest builds the initramfs for Veil's own kernel (make kernel), the
# default guest kernel: everything built in, so no modules to load.
guest: build kernel
	@bash agent/initramfs/build.sh $(BIN)/veil-agent $(CACHE)/kernel-veil $(OUT)/guest

# kernel builds Veil's own guest kernel (everything built in, no modules)
# from Debian's linux-source-6.1 into $(CACHE)/kernel-veil: about 5 min on
# 2 cores, skipped while the fragments are unchanged. Not part of setup.
kernel:
	@CACHE=$(CACHE) bash kernel-config/build-kernel.sh

$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(TOOLS)/protoc-gen-go-ttrpc:
	GOBIN=$(TOOLS) $(GO) install github.com/containerd/ttrpc/cmd/protoc-gen-go-ttrpc@$(PROTOC_GEN_GO_TTRPC_VERSION)

protoc-check:
	@command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler (or make setup)"; exit 1; }
	@protoc --version | grep -qx 'libprotoc $(PROTOC_VERSION)' || { echo "protoc $(PROTOC_VERSION) required, have: $$(protoc --version)"; exit 1; }

generate: protoc-check $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-ttrpc
	cd agent/api && protoc -I. \
		--plugin=protoc-gen-go=$(TOOLS)/protoc-gen-go \
		--plugin=protoc-gen-go-ttrpc=$(TOOLS)/protoc-gen-go-ttrpc \
		--go_out=paths=source_relative:. \
		--go-ttrpc_out=paths=source_relative:. \
		agent.proto
	cd shim/api && protoc -I. \
		--plugin=protoc-gen-go=$(TOOLS)/protoc-gen-go \
		--plugin=protoc-gen-go-ttrpc=$(TOOLS)/protoc-gen-go-ttrpc \
		--go_out=paths=source_relative:. \
		--go-ttrpc_out=paths=source_relative:. \
		telemetry.proto
	CACHE=$(CACHE) bash openapi/generate.sh

# generate-check fails when the committed generated code differs from a
# fresh generation.
generate-check: generate
	@git diff --exit-code -- agent/api shim/api generated || { echo "generated code drifted: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- agent/api shim/api generated)" || { git status --porcelain -- agent/api shim/api generated; echo "generated code drifted: run 'make generate' and commit"; exit 1; }

$(TOOLS)/golangci-lint:
	GOBIN=$(TOOLS) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

# lint: gofmt, go vet, then golangci-lint with .golangci.yml (correctness
# linters and the import boundaries, seccomp-tagged code included).
lint: $(TOOLS)/golangci-lint
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^generated/')); test -z "$$out" || { echo "gofmt needed: $$out"; exit 1; }
	$(GO) vet ./...
	$(TOOLS)/golangci-lint run ./...

# unit-test runs every package's tests; those needing root, VMs or
# containerd skip with a one-line reason. Under the race detector.
unit-test:
	$(GO) test -race -count=1 ./...

# FUZZ_TARGETS lists every Go fuzz target as <package>:<FuzzName>.
FUZZ_TARGETS := \
	./runtime/config:FuzzLoad \
	./runtime/config:FuzzApplyAnnotations \
	./agent/api:FuzzStreamHeader \
	./agent/container:FuzzRewriteSpec \
	./agent/container:FuzzParseProcess \
	./agent/server:FuzzServiceRequests \
	./shim/bundle:FuzzVolumePolicy \
	./shim/bundle:FuzzPlanVolumes \
	./runtime/statedir:FuzzBeneath
FUZZTIME ?= 30s
FUZZPARALLEL ?= 1

# fuzz runs each of FUZZ_TARGETS for FUZZTIME, one after the other, with
# FUZZPARALLEL workers. A crasher is saved under the package's
# testdata/fuzz/<FuzzName>/, where plain go test replays it from then on.
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -parallel $(FUZZPARALLEL) $$pkg; \
	done

# fuzz-smoke fuzzes each target briefly (test runs it): a count of
# inputs, not a duration. Go 1.26's fuzz coordinator can fail a target
# with a bare "context deadline exceeded" when a -fuzztime duration ends
# while a worker is busy (golang/go#75804, fixed in Go 1.27); a loaded CI
# machine hit it. A count has no deadline to race.
fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=20000x

# test is what CI runs: setup, lint, generated-code drift, then every test
# including the VM and containerd ones (root, /dev/net/tun; VMs boot under
# TCG here, one test binary at a time so at most two VMs run at once).
test: setup lint generate-check build guest k8s
	@mkdir -p $(OUT)
	# The unit tests under the race detector (no VEIL_INTEGRATION: the
	# integration tests skip here and run below).
	env -u VEIL_INTEGRATION $(GO) test -race -count=1 ./...
	# The agent's seccomp rules loaded by libseccomp itself, as the agent
	# is built (-tags seccomp).
	VEIL_INTEGRATION=1 CGO_ENABLED=1 $(GO) test -count=1 -tags seccomp -run 'TestVsockDeny' ./agent/container/
	$(MAKE) fuzz-smoke
	VEIL_INTEGRATION=1 VEIL_CACHE=$(CACHE) VEIL_OUTPUT=$(OUT) \
		$(GO) test -count=1 -p 1 -timeout 60m -v ./... 2>&1 | tee $(OUT)/test.log; exit $${PIPESTATUS[0]}

# k8s-test runs only the Kubernetes suite (test/kubernetes; make test runs
# it too): etcd, kube-apiserver and a kubelet on the harness's containerd,
# the same pods on the runc and veil RuntimeClasses, driven by kubectl.
k8s-test: setup build guest k8s
	VEIL_INTEGRATION=1 VEIL_CACHE=$(CACHE) VEIL_OUTPUT=$(OUT) \
		$(GO) test -count=1 -timeout 40m -v ./test/kubernetes/ 2>&1 | tee $(OUT)/k8s-test.log; exit $${PIPESTATUS[0]}

# torture runs the fault-injection and load suite (test/torture) with the
# full counts: 100 pod cycles, 10 pods started at once, 2,000 sequential
# and 100 parallel ExecSyncs, 1 GiB of stdout read slowly. make test runs
# every case once with CI-sized counts. Each case's row (outcome, time to
# recover, leak census) goes to $(OUT)/torture/results.md.
torture: setup build guest
	@mkdir -p $(OUT)
	VEIL_INTEGRATION=1 VEIL_TORTURE=full VEIL_CACHE=$(CACHE) VEIL_OUTPUT=$(OUT) \
		$(GO) test -count=1 -timeout 90m -v ./test/torture/ 2>&1 | tee $(OUT)/torture.log; exit $${PIPESTATUS[0]}

demo: setup build guest
	@VEIL_CACHE=$(CACHE) VEIL_OUTPUT=$(OUT) VEIL_CONFIG=$(CACHE)/veil-config.toml $(GO) run ./test/demo

bench: setup build guest
	VEIL_INTEGRATION=1 VEIL_CACHE=$(CACHE) VEIL_OUTPUT=$(OUT) $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 30m ./test/bench/ ./test/cri/

# conformance runs the CRI conformance suite (critest, built on first use,
# about 2 min) against the runc and veil runtime handlers of one private
# containerd and reports the specs that pass on runc but not on veil
# ($(OUT)/conformance/report.md); it fails when there are any.
# FOCUS=<regexp> / SKIP=<regexp> pick a subset, HANDLERS=runc runs one
# handler, REPORT_ONLY=1 only reports.
conformance: setup build guest
	@bash test/setup/setup.sh critest
	VEIL_CACHE=$(CACHE) VEIL_OUTPUT=$(OUT) FOCUS="$(FOCUS)" SKIP="$(SKIP)" HANDLERS="$(HANDLERS)" REPORT_ONLY="$(REPORT_ONLY)" \
		$(GO) run ./test/conformance

clean:
	rm -rf $(OUT)
