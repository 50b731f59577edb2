package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Down stops the cluster and removes everything it made: pods (through the
// CRI, so that their network and mounts are torn down), processes, nftables
// tables, mounts, cgroups, bridges, files; and puts back every sysctl it
// changed. Each step runs even when an earlier one failed.
func (c *Cluster) Down() error {
	var errs []error
	stop := func(name string) {
		for _, p := range c.procs {
			if p.name == name {
				p.stop(15 * time.Second)
			}
		}
	}
	stop("kubelet") // so that it starts no pod again
	if err := c.removePods(); err != nil {
		errs = append(errs, fmt.Errorf("remove pods: %w", err))
	}
	for _, name := range []string{"kube-proxy", "kube-scheduler", "kube-controller-manager", "containerd", "kube-apiserver", "etcd"} {
		stop(name)
	}
	errs = append(errs, killShims(c.ContainerdSocket()), deleteNftables(c.before), c.unmountAll(), removeKubepodsCgroups(),
		tearDownNetwork(), restoreSysctls(c.before), c.restoreBPFFS())
	for _, d := range []string{c.cfg.Dir, c.cfg.RunDir} {
		errs = append(errs, os.RemoveAll(d))
	}
	errs = append(errs, removeNewPaths(c.before))
	return errors.Join(errs...)
}

// removePods stops and removes every pod sandbox through the CRI.
func (c *Cluster) removePods() error {
	if _, err := os.Stat(c.ContainerdSocket()); err != nil {
		return nil // containerd never started
	}
	conn, err := grpc.NewClient("unix://"+c.ContainerdSocket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range list.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, err)
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killShims kills the runtime shims of the cluster's containerd, which
// outlive it by design.
func killShims(socket string) error {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p + "/cmdline")
		if err != nil || !strings.Contains(string(cmdline), socket) || !strings.Contains(string(cmdline), "containerd-shim") {
			continue
		}
		var pid int
		fmt.Sscan(filepath.Base(p), &pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return nil
}

// deleteNftables removes what kube-proxy and the kubelet added to
// nftables: each table that did not exist before the cluster (kube-proxy's
// own, and those iptables-nft made for the kubelet's chains) goes whole; in
// a table that did exist, the kubelet's chains and jumps are removed.
func deleteNftables(before HostState) error {
	var errs []error
	for _, t := range nftTables() {
		if slices.Contains(before.NftTables, t) {
			continue
		}
		if out, err := exec.Command("nft", "delete", "table", t[0], t[1]).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("nft delete table %s %s: %v: %s", t[0], t[1], err, out))
		}
	}
	for _, ipt := range []string{"iptables", "ip6tables"} {
		for _, args := range [][]string{
			{"-t", "filter", "-D", "INPUT", "-j", "KUBE-FIREWALL"},
			{"-t", "filter", "-D", "OUTPUT", "-j", "KUBE-FIREWALL"},
			{"-t", "filter", "-F", "KUBE-FIREWALL"}, {"-t", "filter", "-X", "KUBE-FIREWALL"},
			{"-t", "filter", "-X", "KUBE-KUBELET-CANARY"}, {"-t", "nat", "-X", "KUBE-KUBELET-CANARY"},
			{"-t", "mangle", "-X", "KUBE-KUBELET-CANARY"}, {"-t", "mangle", "-X", "KUBE-IPTABLES-HINT"},
		} {
			exec.Command(ipt, args...).Run() // absent chains are fine: the host check sees what is left
		}
	}
	return errors.Join(errs...)
}

// unmountAll unmounts, deepest first, what is mounted below the cluster's
// directories or below containerd's shared run directory for its namespace.
func (c *Cluster) unmountAll() error {
	prefixes := []string{c.cfg.Dir + "/", c.cfg.RunDir + "/", "/run/containerd/io.containerd.runtime.v2.task/k8s.io/"}
	var targets []string
	for _, m := range mountPoints() {
		m, _ = strings.CutSuffix(m, " (shared)")
		for _, p := range prefixes {
			if strings.HasPrefix(m, p) {
				targets = append(targets, m)
			}
		}
	}
	slices.SortFunc(targets, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, t := range slices.Compact(targets) {
		if err := syscall.Unmount(t, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

// removeKubepodsCgroups removes the kubelet's cgroup trees from every
// hierarchy, children first.
func removeKubepodsCgroups() error {
	roots := globAll(kubepodsCgroups)
	var errs []error
	for _, root := range roots {
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs)
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}
