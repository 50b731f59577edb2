package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// sysctls are the kernel settings the cluster's components may change:
// the CNI bridge plugin turns on forwarding, the kubelet sets its kernel
// tunables, kube-proxy its conntrack ones. Each is put back after a run.
var sysctls = []string{
	"net/ipv4/ip_forward",
	"net/ipv6/conf/all/forwarding",
	"net/ipv4/conf/all/route_localnet",
	"net/bridge/bridge-nf-call-iptables",
	"net/netfilter/nf_conntrack_max",
	"net/netfilter/nf_conntrack_tcp_timeout_established",
	"net/netfilter/nf_conntrack_tcp_timeout_close_wait",
	"vm/overcommit_memory",
	"vm/panic_on_oom",
	"kernel/panic",
	"kernel/panic_on_oops",
	"kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes",
}

// HostState is what a cluster run could leave behind on the machine.
type HostState struct {
	Sysctls   map[string]string
	Links     []string
	Routes    string
	Nftables  string
	NftTables [][2]string // family and name of each table
	Mounts    []string
	Cgroups   []string
	Processes []string
	// Paths are the entries of the directories the runtime, the CNI plugins
	// and the kubelet write to outside the cluster's own.
	Paths []string
}

// watchedPaths are globs of the places that Paths lists.
var watchedPaths = []string{
	"/var/lib/cni", "/var/lib/cni/*", "/var/lib/cni/*/*",
	"/var/log/containers", "/var/log/containers/*", "/var/log/pods", "/var/log/pods/*",
	"/run/containerd", "/run/containerd/*", "/run/containerd/*/k8s.io",
}

// SnapshotHost reads the host's state. binDir names the Kubernetes binaries,
// whose processes are listed.
func SnapshotHost(binDir string) HostState {
	s := HostState{Sysctls: map[string]string{}}
	for _, k := range sysctls {
		if v, err := os.ReadFile("/proc/sys/" + k); err == nil {
			s.Sysctls[k] = strings.TrimSpace(string(v))
		}
	}
	s.Links = linkNames()
	s.Routes = command("ip", "route", "show", "table", "all")
	s.Nftables = command("nft", "list", "ruleset")
	s.NftTables = nftTables()
	s.Mounts = mountPoints()
	s.Cgroups = globAll(kubepodsCgroups)
	s.Processes = processesOf(binDir)
	s.Paths = globAll(watchedPaths)
	return s
}

// Diff lists every difference from before to s, empty when none.
func (s HostState) Diff(before HostState) []string {
	var out []string
	for k, v := range before.Sysctls {
		if s.Sysctls[k] != v {
			out = append(out, fmt.Sprintf("sysctl %s: %q, was %q", k, s.Sysctls[k], v))
		}
	}
	cmp := func(what string, a, b []string) {
		if !slices.Equal(a, b) {
			out = append(out, fmt.Sprintf("%s: %q, was %q", what, a, b))
		}
	}
	cmp("links", s.Links, before.Links)
	cmp("routes", []string{s.Routes}, []string{before.Routes})
	cmp("nftables", []string{s.Nftables}, []string{before.Nftables})
	cmp("mounts", s.Mounts, before.Mounts)
	cmp("kubepods cgroups", s.Cgroups, before.Cgroups)
	cmp("processes", s.Processes, before.Processes)
	cmp("paths", s.Paths, before.Paths)
	return out
}

func command(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%s: %v: %s", name, err, out)
	}
	return string(out)
}

func linkNames() []string {
	ents, _ := os.ReadDir("/sys/class/net")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// mountPoints lists mount points (field 5 of mountinfo), each followed by
// " (shared)" when it propagates, sorted.
func mountPoints() []string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 7 {
			continue
		}
		if shared := slices.ContainsFunc(f[6:], func(s string) bool { return strings.HasPrefix(s, "shared:") }); shared {
			out = append(out, f[4]+" (shared)")
		} else {
			out = append(out, f[4])
		}
	}
	slices.Sort(out)
	return out
}

// processesOf lists the processes whose executable is in dir, or which are
// the cluster's etcd, containerd or shims, as "PID EXE".
func processesOf(dir string) []string {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var out []string
	for _, p := range procs {
		cmdline, err := os.ReadFile(p + "/cmdline")
		if err != nil || !strings.Contains(string(cmdline), clusterMarker) && !strings.HasPrefix(string(cmdline), dir) {
			continue
		}
		out = append(out, filepath.Base(p)+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return out
}

// restoreSysctls writes back each sysctl that differs from before.
func restoreSysctls(before HostState) error {
	var errs []error
	for k, v := range before.Sysctls {
		now, err := os.ReadFile("/proc/sys/" + k)
		if err == nil && strings.TrimSpace(string(now)) != v {
			errs = append(errs, os.WriteFile("/proc/sys/"+k, []byte(v), 0o644))
		}
	}
	return errors.Join(errs...)
}

// removeNewPaths removes the watched entries that were not there before,
// parents first (which takes their children along).
func removeNewPaths(before HostState) error {
	var errs []error
	for _, p := range globAll(watchedPaths) {
		if !slices.Contains(before.Paths, p) {
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// kubepodsCgroups are the kubelet's cgroup trees, in a hybrid or a pure v2
// layout.
var kubepodsCgroups = []string{"/sys/fs/cgroup/*/kubepods*", "/sys/fs/cgroup/kubepods*"}

// globAll is every match of the patterns, in their order.
func globAll(patterns []string) []string {
	var out []string
	for _, g := range patterns {
		m, _ := filepath.Glob(g)
		out = append(out, m...)
	}
	return out
}

// nftTables lists the nftables tables as family and name.
func nftTables() [][2]string {
	var out [][2]string
	for _, l := range strings.Split(command("nft", "list", "tables"), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "table" {
			out = append(out, [2]string{f[1], f[2]})
		}
	}
	return out
}
