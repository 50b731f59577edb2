#!/usr/bin/env bash
# run-in-cgroup.sh CGROUP CMD [ARGS...]: run a command inside a cgroup v2
# directory (relative to the cgroup2 mount), so a sensor watching that cgroup
# reports what it does.
set -euo pipefail
if [ $# -lt 2 ]; then
	echo "usage: $0 CGROUP CMD [ARGS...]" >&2
	exit 2
fi
root=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
if [ -z "$root" ]; then
	echo "run-in-cgroup: no cgroup2 filesystem is mounted" >&2
	exit 1
fi
dir="$root/$1"
shift
mkdir -p "$dir"
echo $$ >"$dir/cgroup.procs"
exec "$@"
