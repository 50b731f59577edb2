#!/usr/bin/env bash
# kube-build.sh: builds the cluster test's Kubernetes (test/k8s/kubebin, one
# multi-call binary) unless a build of the same sources and Go is cached, and
# prints the directory holding kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy and kubectl. A cold build takes about a
# quarter of an hour on two cores; a cached one, well under a second.
set -euo pipefail

src=$(cd "$(dirname "$0")/../test/k8s/kubebin" && pwd)
cache=${RINGFENCE_KUBE_CACHE:-/var/cache/ringfence/kube}
key=$( (cat "$src/go.mod" "$src/go.sum" "$src/main.go"; go version) | sha256sum | cut -c1-16)
out=$cache/$key

if [ ! -x "$out/kube" ]; then
	echo "kube-build: building Kubernetes from $src into $out (cold: ~15 min)" >&2
	start=$(date +%s)
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/.build.XXXXXX")
	(cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$tmp/kube" .)
	for n in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
		ln -s kube "$tmp/$n"
	done
	rm -rf "$out"
	mv "$tmp" "$out" # a directory appears whole or not at all
	echo "kube-build: built in $(($(date +%s) - start)) s" >&2
fi
echo "$out"
