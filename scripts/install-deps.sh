#!/usr/bin/env bash
# install-deps.sh [run|test]: installs what running (run) or building and
# testing (test, the default) ringfence needs, idempotently: nothing is
# fetched when everything is already there.
set -euo pipefail

profile=${1:-test}
case "$profile" in
run)
	# The eBPF objects are committed: no compiler needed. busybox-static
	# and curl are what the README's example runs (nc, the metrics).
	packages=(ca-certificates git busybox-static curl)
	;;
test)
	packages=(
		clang-19 llvm-19 libbpf-dev bpftool   # eBPF compiler and headers (make generate)
		qemu-system-x86 busybox-static cpio   # test VMs (make vmtest)
		xz-utils                              # kernel modules for the VMs
		debian-archive-keyring                # what the newest VM kernel's backports are checked against
		containerd runc                       # a real container runtime for the tests
		jq                                    # the store benchmark's comparison
		etcd-server containernetworking-plugins nftables  # the cluster test (make k8stest)
		gcc libc6-dev                         # its pause image, linked statically
		iproute2 git make ca-certificates
	)
	;;
*)
	echo "usage: $0 [run|test]" >&2
	exit 2
	;;
esac

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: run as root (apt-get install, BPF, cgroups)" >&2
	exit 1
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Go: the module needs the version in go.mod. A Go of 1.21 or newer fetches
# that toolchain itself from the module proxy (GOTOOLCHAIN=auto).
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
	echo "install-deps: no Go found; installing golang-go (it fetches the toolchain go.mod asks for)"
	apt-get install -y -qq golang-go >/dev/null
fi
