#!/usr/bin/env bash
# Runs a private containerd for the runtime tests, next to (never instead of)
# any system containerd:
#
#   containerd.sh start    install containerd, runc and busybox-static if
#                          missing, start containerd in the background and
#                          import the busybox test image
#   containerd.sh stop     kill containerd, its shims and containers, unmount
#                          leftovers and remove every file it made
#   containerd.sh kill-daemon
#                          stop the containerd process only: shims and
#                          containers run on, and start finds them again
#   containerd.sh status   exit 0 if it runs and answers, 3 if not
#   containerd.sh vm-files install what is missing, build the test image and
#                          print, one SRC:DST a line, the host files a test VM
#                          needs to run this script (vmtests -extra)
#
# Both start and stop are idempotent. Environment:
#   RF_CONTAINERD_ROOT        its directory: config, log, root and state
#                             (default /var/lib/ringfence-test/containerd)
#   RF_CONTAINERD_SOCK        its gRPC socket
#                             (default /run/ringfence-test/containerd.sock)
#   RF_CONTAINERD_NAMESPACES  namespaces the test image is imported into
#                             (default "default")
#   RF_IMAGE_CACHE            where the built image tarball is kept across
#                             runs (default /var/cache/ringfence-test)
set -euo pipefail

readonly base=${RF_CONTAINERD_ROOT:-/var/lib/ringfence-test/containerd}
readonly sock=${RF_CONTAINERD_SOCK:-/run/ringfence-test/containerd.sock}
readonly cache=${RF_IMAGE_CACHE:-/var/cache/ringfence-test}
readonly namespaces=${RF_CONTAINERD_NAMESPACES:-default}
readonly image=ringfence.test/busybox:latest
# The shims and runc keep their sockets and state here whatever our root and
# state are, so stop cleans our entries there too.
readonly shared_run=/run/containerd
# Bumped whenever the image layout below changes, so a stale cached tarball
# is not reused.
readonly image_format=1

case "$base" in /* ) ;; *) echo "containerd.sh: RF_CONTAINERD_ROOT must be an absolute path" >&2; exit 2 ;; esac
[ "$base" != / ] || { echo "containerd.sh: RF_CONTAINERD_ROOT must not be /" >&2; exit 2; }

log() { echo "containerd.sh: $*" >&2; }
die() { log "$*"; exit 1; }

ctr_() { ctr -a "$sock" "$@"; }

# read_cmdline PID: sets cmd to the process's arguments, each followed by a
# space. Read with builtins only: stop scans every process, and a fork per
# process costs seconds in an emulated test VM.
read_cmdline() {
	local -a argv
	local arg
	mapfile -d '' -t argv 2>/dev/null <"/proc/$1/cmdline" || return 1
	cmd=
	for arg in "${argv[@]}"; do cmd+="$arg "; done
}

pid_of_daemon() {
	local pid cmd
	pid=$(cat "$base/containerd.pid" 2>/dev/null) || return 1
	# The pid file may outlive the daemon and the pid be reused.
	read_cmdline "$pid" || return 1
	[[ $cmd == *"containerd --config $base/config.toml "* ]] || return 1
	echo "$pid"
}

# alive PID: true while PID runs; a zombie does not count, so waiting for a
# killed process does not depend on its parent reaping it.
alive() {
	local stat
	stat=$(cat 2>/dev/null "/proc/$1/stat") || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# Whether any containerd or shim runs, ours or not.
any_runtime_alive() {
	local dir argv0
	for dir in /proc/[0-9]*; do
		argv0=
		read -r -d '' argv0 2>/dev/null <"$dir/cmdline" || true
		case "${argv0##*/}" in containerd | containerd-shim*) return 0 ;; esac
	done
	return 1
}

# ctr waits 10s for an absent socket by default; a stopped daemon must be
# seen at once.
answers() { [ -S "$sock" ] && ctr --connect-timeout 2s -a "$sock" version >/dev/null 2>&1; }

# --- install -----------------------------------------------------------------

# The programs start and stop run beyond busybox's applets.
readonly programs=(containerd containerd-shim-runc-v2 ctr runc flock)

install_packages() {
	local missing=() p
	# No dpkg (a test VM, whose image carries the programs): nothing can be
	# installed, and nothing needs to be.
	if ! command -v dpkg-query >/dev/null; then
		for p in "${programs[@]}"; do
			command -v "$p" >/dev/null || missing+=("$p")
		done
		[ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}, and no dpkg to install them"
		return 0
	fi
	for p in containerd runc busybox-static; do
		[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Only refresh the package lists when the install cannot proceed without.
	if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

# --- image -------------------------------------------------------------------

# blob FILE DIR: moves FILE into DIR/blobs/sha256 under its digest and prints
# "DIGEST SIZE".
blob() {
	local sum size
	sum=$(sha256sum "$1" | cut -d' ' -f1)
	size=$(stat -c %s "$1")
	mv "$1" "$2/blobs/sha256/$sum"
	echo "sha256:$sum $size"
}

# build_image OUT: writes an OCI image layout tarball holding busybox. A
# subshell, for the EXIT trap that removes its work directory.
build_image() (
	local out=$1 work arch applet diffid layer layer_size config config_size manifest manifest_size
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	arch=$(dpkg --print-architecture)

	local root=$work/rootfs
	mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,root,run,var}
	cp /bin/busybox "$root/bin/busybox"
	for applet in $(/bin/busybox --list); do
		[ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
	done
	# Mount points the runtime bind-mounts over; they must exist for a
	# read-only root filesystem.
	: >"$root/etc/hosts"
	: >"$root/etc/resolv.conf"
	: >"$root/etc/hostname"
	echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
	echo "root:x:0:" >"$root/etc/group"
	chmod 1777 "$root/tmp"

	local oci=$work/oci
	mkdir -p "$oci/blobs/sha256"
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$root" -cf "$work/layer.tar" .
	diffid=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
	gzip -n "$work/layer.tar"
	read -r layer layer_size < <(blob "$work/layer.tar.gz" "$oci")

	cat >"$work/config.json" <<-EOF
	{"architecture":"$arch","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$diffid"]}}
	EOF
	read -r config config_size < <(blob "$work/config.json" "$oci")

	cat >"$work/manifest.json" <<-EOF
	{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$config","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"$layer","size":$layer_size}]}
	EOF
	read -r manifest manifest_size < <(blob "$work/manifest.json" "$oci")

	cat >"$oci/index.json" <<-EOF
	{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$manifest","size":$manifest_size,"platform":{"architecture":"$arch","os":"linux"},"annotations":{"io.containerd.image.name":"$image","org.opencontainers.image.ref.name":"latest"}}]}
	EOF
	echo '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"

	tar -C "$oci" -cf "$out.tmp" oci-layout index.json blobs
	# Atomic, so a concurrent start never imports half a file.
	mv "$out.tmp" "$out"
)

# image_tarball: prints the cached tarball, building it when busybox changed.
image_tarball() {
	local key out
	key=$(cat <(echo "$image_format") /bin/busybox | sha256sum | cut -c1-16)
	out=$cache/busybox-$key.oci.tar
	if [ ! -s "$out" ]; then
		# Building needs dpkg and GNU tar, which a test VM lacks: it gets
		# the host's tarball at this path (vm-files).
		command -v dpkg-query >/dev/null ||
			die "no image tarball $out, and it cannot be built here"
		rm -f "$cache"/busybox-*.oci.tar
		build_image "$out"
	fi
	echo "$out"
}

# Images belong to a namespace: import into each one the tests use.
import_image() {
	local ns
	for ns in $namespaces; do
		grep -qx "$image" <<<"$(ctr_ -n "$ns" images ls -q)" && continue
		ctr_ -n "$ns" images import "$1" >/dev/null
	done
}

# --- start -------------------------------------------------------------------

write_config() {
	cat >"$base/config.toml" <<-EOF
	version = 2
	root = "$base/root"
	state = "$base/state"
	# The CRI plugin is what makes containerd slow to start and what would
	# touch the host's CNI and kubelet setup; the tests speak the native API.
	disabled_plugins = ["io.containerd.grpc.v1.cri"]

	[grpc]
	  address = "$sock"

	[ttrpc]
	  address = "$sock.ttrpc"

	[debug]
	  address = ""

	[metrics]
	  address = ""

	[plugins."io.containerd.internal.v1.opt"]
	  path = "$base/opt"
	EOF
}

start() {
	[ "$(id -u)" -eq 0 ] || die "run as root (containers, cgroups, mounts)"
	mkdir -p "$cache"
	# Serialises package installs, image builds and the shared parent
	# directories between concurrent starts and stops (one per test package).
	exec 9>"$cache/.lock"
	flock 9
	mkdir -p "$base" "$(dirname "$sock")"
	install_packages
	local tarball
	tarball=$(image_tarball)
	flock -u 9

	local pid
	if ! pid=$(pid_of_daemon); then
		write_config
		rm -f "$sock" "$sock.ttrpc"
		# Its own session, and no stdio shared with the caller: whoever runs
		# this script waits for our stdout to close.
		setsid containerd --config "$base/config.toml" </dev/null >>"$base/containerd.log" 2>&1 &
		pid=$!
		echo "$pid" >"$base/containerd.pid"
	fi

	local i
	for ((i = 0; i < 200; i++)); do
		answers && break
		# By pid, not by pid_of_daemon's command line: under load the child
		# may not have exec'd containerd yet.
		if ! alive "$pid"; then
			tail -n 20 "$base/containerd.log" >&2 || true
			die "containerd exited during start (log: $base/containerd.log)"
		fi
		sleep 0.05
	done
	answers || die "containerd does not answer on $sock after 10s (log: $base/containerd.log)"
	import_image "$tarball"
	log "running, pid $pid, socket $sock, image $image"
}

# --- stop --------------------------------------------------------------------

# Tasks as "namespace id" lines, from the state directory, so that they are
# found even when the daemon is already gone.
tasks_on_disk() {
	local dir
	for dir in "$base"/state/io.containerd.runtime.v2.task/*/*; do
		[ -d "$dir" ] || continue
		echo "$(basename "$(dirname "$dir")") $(basename "$dir")"
	done
}

# The shim's socket name: sha256 of address/namespace/id, as containerd 1.6
# derives it.
shim_socket() {
	echo "$shared_run/s/$(printf '%s' "$sock/$1/$2" | sha256sum | cut -d' ' -f1)"
}

# Pids of the shims serving our socket, whether or not the daemon still runs.
our_shims() {
	local dir cmd
	for dir in /proc/[0-9]*; do
		read_cmdline "${dir#/proc/}" || continue
		case "$cmd" in
		*containerd-shim*" -address $sock "*) echo "${dir#/proc/}" ;;
		esac
	done
}

# The client FIFO directories our containers' stdio uses: ctr leaves them
# behind for detached tasks. Found through the shims' open files, and by the
# container ids ctr names the FIFOs after.
our_fifo_dirs() {
	local shim fd target ns id f
	for shim in $(our_shims); do
		for fd in /proc/"$shim"/fd/*; do
			target=$(readlink "$fd" 2>/dev/null) || continue
			case "$target" in "$shared_run"/fifo/*/*) dirname "$target" ;; esac
		done
	done
	while read -r ns id; do
		[ -n "$id" ] || continue
		for f in "$shared_run"/fifo/*/"$id"-std{in,out,err}; do
			[ -e "$f" ] && dirname "$f"
		done
	done < <(tasks_on_disk)
	return 0
}

# Asks the daemon to remove everything; the fast and tidy path.
remove_via_daemon() {
	answers || return 0
	local ns id
	for ns in $(ctr_ namespaces ls -q 2>/dev/null); do
		for id in $(ctr_ -n "$ns" tasks ls -q 2>/dev/null); do
			ctr_ -n "$ns" tasks rm -f "$id" >/dev/null 2>&1 || true
		done
		for id in $(ctr_ -n "$ns" containers ls -q 2>/dev/null); do
			ctr_ -n "$ns" containers rm "$id" >/dev/null 2>&1 || true
		done
	done
}

kill_daemon() {
	local pid i
	pid=$(pid_of_daemon) || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		alive "$pid" || return 0
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
	while alive "$pid"; do sleep 0.05; done
}

# Whatever the daemon left: containers (runc removes their processes, cgroups
# and state), then the shims serving our socket.
remove_leftovers() {
	local ns id
	while read -r ns id; do
		[ -n "$id" ] || continue
		runc --root "$shared_run/runc/$ns" delete --force "$id" >/dev/null 2>&1 || true
		rm -rf "${shared_run:?}/runc/$ns/$id"
		rm -f "$(shim_socket "$ns" "$id")"
	done < <(tasks_on_disk)

	local shim
	for shim in $(our_shims); do
		kill -KILL "$shim" 2>/dev/null || true
	done

	# Deepest first; lazily if still busy.
	local mp
	for mp in $(awk -v b="$base/" 'index($5, b) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
		umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
	done
}

# Empty shared directories go too, but only while no other containerd or shim
# runs: one could be about to create an entry in them.
remove_shared_dirs() {
	any_runtime_alive && return 0
	rmdir "$shared_run"/runc/* "$shared_run"/runc "$shared_run"/s "$shared_run"/fifo "$shared_run" 2>/dev/null || true
}

stop() {
	[ "$(id -u)" -eq 0 ] || die "run as root (containers, cgroups, mounts)"
	local fifos
	fifos=$(our_fifo_dirs | sort -u)
	remove_via_daemon
	kill_daemon
	remove_leftovers
	local dir
	for dir in $fifos; do rm -rf "$dir"; done
	remove_shared_dirs
	rm -rf "$base"
	rm -f "$sock" "$sock.ttrpc"
	mkdir -p "$cache"
	exec 9>"$cache/.lock"
	flock 9
	rmdir "$(dirname "$sock")" "$(dirname "$base")" 2>/dev/null || true
	flock -u 9
}

# The host files a test VM needs for start and stop, as SRC:DST lines: the
# programs (their shared libraries are the harness's business), bash at the
# path the Go side runs it from, and the image tarball where image_tarball
# looks for it.
vm_files() {
	[ "$(id -u)" -eq 0 ] || die "run as root (installs packages)"
	mkdir -p "$cache"
	exec 9>"$cache/.lock"
	flock 9
	install_packages
	local tarball p path
	tarball=$(image_tarball)
	flock -u 9
	for p in "${programs[@]}"; do
		path=$(command -v "$p") || die "$p not found"
		echo "$path:$path"
	done
	echo "$(command -v bash):/bin/bash"
	echo "$tarball:$tarball"
}

status() {
	local pid
	if pid=$(pid_of_daemon) && answers; then
		echo "running pid=$pid socket=$sock root=$base"
		return 0
	fi
	echo "stopped socket=$sock root=$base"
	return 3
}

case "${1:-}" in
start) start ;;
stop) stop ;;
kill-daemon) kill_daemon ;;
status) status ;;
vm-files) vm_files ;;
*) echo "usage: $0 start|stop|kill-daemon|status|vm-files" >&2; exit 2 ;;
esac
