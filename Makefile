# ringfence: see README.md. Every target that needs tools installs them first.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
BIN     := build/ringfence
VMBIN   := build/vm
# The VMs run, on each kernel, every TestPrivileged test (root and a kernel)
# of the packages that have a *_privileged_test.go file; TestHost tests
# need root on the host only (see test/testenv).
PRIV_PKGS ?= $(sort $(dir $(shell git ls-files --cached --others --exclude-standard '*_privileged_test.go')))
VMRUN     ?= ^TestPrivileged
# What the demo needs inside a VM, under /opt/ringfence (see test/demo).
VM_DEMO_FILES := scripts/demo.sh test/runtime/containerd.sh deploy/policies/demo.yaml
# Kernel modules the VMs load first: overlayfs for containerd's snapshotter,
# veth for the interface-binding tests.
VM_MODULES := overlay,veth
WATCH   ?= ringfence-demo
KERNELS ?= 6.1,6.12
# The newest series, from Debian 13's backports, runs the tests of what
# newer kernels change: the programs' load and verification, the hooks they
# add (inode_file_setattr, 6.17) and every file-write route. The whole
# suite runs on KERNELS.
NEWEST_KERNEL ?= 6.18
NEWEST_TESTS  ?= ProbeAndLoad VerifierCost OverlayKnown Events OneEventPerWrite ReadOnlyRootFilesystem ReadOnlyContainer ReadOnlyBypasses ReadOnlyCutPath
# Each must pass there (VMREQUIRE): a renamed test fails the run, never drops out of it.
empty :=
space := $(empty) $(empty)
comma := ,

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / { printf "  %-16s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## install build and test dependencies (apt; idempotent)
	@scripts/install-deps.sh test

.PHONY: deps-run
deps-run:
	@scripts/install-deps.sh run

.PHONY: generate
generate: deps ## compile the eBPF C programs and regenerate their Go bindings
	go generate ./bpf/

.PHONY: generate-check
generate-check: generate ## fail if the committed eBPF objects differ from a fresh generate
	@# Against HEAD, not the index: a staged but uncommitted change is not committed.
	@if ! git diff --quiet HEAD -- bpf/ || [ -n "$$(git ls-files --others --exclude-standard bpf/)" ]; then \
		git status --short bpf/; \
		echo "generated files are not up to date: run 'make generate' and commit the result"; \
		exit 1; \
	fi

.PHONY: build
build: ## build the ringfence binary into build/
	CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/ringfence

IMAGE := build/ringfence-image.tar

.PHONY: image
image: build ## the container image archive build/ringfence-image.tar, named ringfence:VERSION (reproducible; ctr images import)
	go run ./cmd/mkimage -binary $(BIN) -version $(VERSION) -o $(IMAGE)

DEMO_SOCK := /run/ringfence-demo/containerd.sock
POLICY    ?= deploy/policies/default.yaml

.PHONY: run
run: deps-run build ## run the sensor with the default policy (POLICY=deploy/policies/default.yaml), its event store, API socket and metrics (DEMO=1: with a private containerd)
ifeq ($(DEMO),1)
	RF_CONTAINERD_ROOT=/var/lib/ringfence-demo RF_CONTAINERD_SOCK=$(DEMO_SOCK) test/runtime/containerd.sh start
	@echo "demo: containerd at $(DEMO_SOCK) with image ringfence.test/busybox:latest; 'make demo-stop' removes it"
	$(BIN) run --policy $(POLICY) --watch-cgroup $(WATCH) --create-cgroup --containerd-socket $(DEMO_SOCK)
else
	$(BIN) run --policy $(POLICY) --watch-cgroup $(WATCH) --create-cgroup
endif

.PHONY: demo-stop
demo-stop: ## stop and remove the private containerd of 'make run DEMO=1'
	RF_CONTAINERD_ROOT=/var/lib/ringfence-demo RF_CONTAINERD_SOCK=$(DEMO_SOCK) test/runtime/containerd.sh stop

.PHONY: test
test: deps generate-check lint ## every test: unit, privileged on the host, the cluster test, the VM tests on each kernel, and the newest kernel's
	CGO_ENABLED=0 RINGFENCE_REQUIRE_PRIVILEGED=1 go test -count=1 -timeout 15m $$(go list ./... | grep -v '/test/k8s$$')
	$(MAKE) k8stest
	$(MAKE) vmtest
	$(MAKE) vmtest-newest

.PHONY: k8stest
k8stest: deps image ## the cluster test: Kubernetes 1.37.2 built from upstream (cached under /var/cache/ringfence/kube), ringfence applied with kubectl apply -k
	@kube=$$(scripts/kube-build.sh) && \
	pause=$$(cd test/k8s/kubebin && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c && \
	echo "k8stest: Kubernetes from $$kube" && \
	CGO_ENABLED=0 RINGFENCE_REQUIRE_PRIVILEGED=1 RINGFENCE_KUBE_BIN=$$kube RINGFENCE_PAUSE_SRC=$$pause \
	RINGFENCE_IMAGE=$(CURDIR)/$(IMAGE) RINGFENCE_VERSION=$(VERSION) \
		go test -count=1 -v -timeout 20m ./test/k8s/

.PHONY: vmtest
vmtest: deps build ## run the TestPrivileged tests inside qemu VMs on Debian kernels 6.1 and 6.12 (VMRUN=regexp: only those tests)
	@mkdir -p $(VMBIN) && rm -f $(VMBIN)/*.test
	@for p in $(PRIV_PKGS); do \
		CGO_ENABLED=0 go test -c -o $(VMBIN)/$$(echo $${p%/} | tr / -).test ./$$p || exit 1; \
	done
	@# containerd, runc, the test image and what containerd.sh needs, as -extra SRC:DST.
	test/runtime/containerd.sh vm-files >$(VMBIN)/runtime.files
	@for f in $(VM_DEMO_FILES); do echo "$$f:/opt/ringfence/$$f"; done >>$(VMBIN)/runtime.files
	@echo "$(BIN):/opt/ringfence/ringfence" >>$(VMBIN)/runtime.files
	@# A second build whose programs differ (its version does), for the
	@# upgrade of test/survival; bpftool lists what is loaded there.
	CGO_ENABLED=0 go build -ldflags "-X main.version=$(VERSION)-b" -o $(BIN)-b ./cmd/ringfence
	@echo "$(BIN)-b:/opt/ringfence/ringfence-b" >>$(VMBIN)/runtime.files
	@echo "$$(command -v bpftool):/usr/sbin/bpftool" >>$(VMBIN)/runtime.files
	go run ./vmtests/cmd/vmtest -kernels $(KERNELS) -modules $(VM_MODULES) -timeout 60m -run '$(value VMRUN)' $(if $(VMREQUIRE),-require '$(VMREQUIRE)') \
		$$(sed 's/^/-extra /' $(VMBIN)/runtime.files) -tests $$(ls $(VMBIN)/*.test | paste -sd,)

.PHONY: vmtest-newest
vmtest-newest: ## the load, hook and file-write tests in a VM on Debian's newest kernel (6.18, from trixie-backports)
	$(MAKE) vmtest KERNELS=$(NEWEST_KERNEL) PRIV_PKGS="sensor/ sensor/kernel/" \
		VMRUN='^TestPrivileged($(subst $(space),|,$(strip $(NEWEST_TESTS))))$$' \
		VMREQUIRE='$(subst $(space),$(comma),$(addprefix TestPrivileged,$(strip $(NEWEST_TESTS))))'

.PHONY: demo
demo: deps build ## the demo on this host: containerd, the sensor with deploy/policies/demo.yaml, containers trying forbidden things
	scripts/demo.sh $(BIN)

.PHONY: demo-vm
demo-vm: ## the same demo in a VM on Debian's 6.12 kernel, where BPF LSM gives the full tier
	$(MAKE) vmtest PRIV_PKGS=test/demo/ KERNELS=6.12 VMRUN=TestPrivilegedDemo

.PHONY: bench
bench: deps build ## sensor overhead (with vs without, side by side), then the store and daemon targets
	go run ./test/bench -ringfence $(BIN)
	go run ./test/storebench -ringfence $(BIN)

.PHONY: fuzz
fuzz: ## fuzz the ring-buffer decoder for a minute
	go test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./sensor/decode/

.PHONY: lint
lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...

.PHONY: clean
clean: ## remove build outputs
	rm -rf build
