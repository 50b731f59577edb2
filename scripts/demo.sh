#!/usr/bin/env bash
# The ringfence demo: a private containerd, the sensor with the policies of
# deploy/policies/demo.yaml, and containers that exec, write, bind and try
# forbidden things; then the violations, the posture report and what this
# kernel can enforce. Everything it starts is stopped and removed at the end.
#
#   scripts/demo.sh [RINGFENCE-BINARY]     (as root; `make demo` runs it)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$here/build/ringfence}
containerd_sh=${RF_CONTAINERD_SH:-$here/test/runtime/containerd.sh}
policy=${RF_DEMO_POLICY:-$here/deploy/policies/demo.yaml}
export RF_CONTAINERD_ROOT=/var/lib/ringfence-demo
export RF_CONTAINERD_SOCK=/run/ringfence-demo/containerd.sock
image=ringfence.test/busybox:latest
work=$(mktemp -d)
api=$work/api.sock
pins=/sys/fs/bpf/ringfence-demo-$$
daemon=

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() {
	[ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
	# The rules outlive the daemon (pinned): the demo removes its own.
	"$bin" uninstall --bpffs "$pins" >/dev/null 2>&1 || true
	"$containerd_sh" stop || true
	rm -rf "$work"
}
trap cleanup EXIT
ctr_() { ctr -a "$RF_CONTAINERD_SOCK" -n default "$@"; }
rf() { "$bin" "$@" --api-socket "$api"; }

say "starting containerd (private root, socket $RF_CONTAINERD_SOCK)"
"$containerd_sh" start

say "starting the sensor with $policy"
# A generous hold: in an emulated VM a container takes seconds to create.
"$bin" run --policy "$policy" --containerd-socket "$RF_CONTAINERD_SOCK" --store "$work/store" --hold-timeout 20s \
	--api-socket "$api" --metrics-addr "" --stdout=false --bpffs "$pins" 2>"$work/daemon.log" &
daemon=$!
ready=
for _ in $(seq 600); do
	if rf status -o json 2>/dev/null | grep -q '"ready": *true'; then ready=1; break; fi
	kill -0 "$daemon" 2>/dev/null || { cat "$work/daemon.log"; exit 1; }
	sleep 0.1
done
[ -n "$ready" ] || { echo "the sensor did not become ready in 60 s" >&2; cat "$work/daemon.log" >&2; exit 1; }
rf status | sed -n '1,/^HOOK/p' | head -n -1

say "demo-web: host network, read-only root file system, may accept traffic on lo:8080 only"
ctr_ run --rm --net-host "$image" demo-web-1 sh -c '
	echo ok >/tmp/scratch && echo "write /tmp/scratch: allowed"
	echo evil >>/etc/passwd 2>/dev/null && echo "write /etc/passwd: succeeded" || echo "write /etc/passwd: refused"
	httpd -p 0.0.0.0:9090 2>/dev/null && echo "listen on 0.0.0.0:9090: succeeded" || echo "listen on 0.0.0.0:9090: refused"
	httpd -p 127.0.0.1:8080 && echo "listen on 127.0.0.1:8080: allowed"
	sleep 0.3; kill $(pidof httpd) 2>/dev/null; true' || true

say "demo-untrusted: an image from a registry the policy does not allow"
if out=$(ctr_ run --rm "$image" demo-untrusted-1 echo "the entrypoint ran" 2>&1); then :; fi
echo "container output: ${out:-<nothing: killed before its first instruction>}"

say "demo-priv: a privileged container under an auditing policy (left running for the posture report)"
ctr_ run -d --privileged "$image" demo-priv-1 sleep 300
sleep 0.5
ctr_ tasks ls

sleep 1
say "violations (ringfence events --kind violation)"
"$bin" events --store "$work/store" --kind violation
say "posture (ringfence posture)"
rf posture
say "daemon warnings and errors"
grep -E 'level=(WARN|ERROR)' "$work/daemon.log" || echo "none"
