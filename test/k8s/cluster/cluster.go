// Package cluster brings a real single-node Kubernetes up on this machine
// for the cluster tests, and puts the host back as it was afterwards: etcd
// and the CNI plugins from the distribution, containerd with its CRI plugin
// on a root and socket of its own, and kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet and kube-proxy built from
// upstream sources (test/k8s/kubebin). Every address it uses is this
// machine's own (see network.go).
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ringfence/ringfence/deploy/image"
)

// clusterMarker is in the path of every file and socket the cluster makes,
// so its processes can be told from any other.
const clusterMarker = "ringfence-k8s"

// Images the cluster has without a registry.
const (
	PauseImage   = "localhost/pause:ringfence-test"
	BusyboxImage = "localhost/busybox:ringfence-test"
)

// Config says where the cluster's pieces are.
type Config struct {
	// KubeBin is the directory of the Kubernetes binaries (scripts/kube-build.sh).
	KubeBin string
	// PauseSource is Kubernetes' build/pause/linux/pause.c.
	PauseSource string
	// WorkloadFiles are added to the busybox image (test programs).
	WorkloadFiles []image.File
	// Dir holds the cluster's files (default /var/lib/ringfence-k8s) and
	// RunDir its sockets (default /run/ringfence-k8s); both are removed by Down.
	Dir, RunDir string
	// Logf reports progress.
	Logf func(format string, args ...any)
}

// Cluster is a running cluster.
type Cluster struct {
	cfg   Config
	procs []*proc
	// before is the host as it was before Up, which Down restores.
	before HostState
	// mountedBPFFS and sharedBPFFS say what prepareBPFFS changed.
	mountedBPFFS, sharedBPFFS bool
	// Started is how long Up took from nothing to a ready node.
	Started time.Duration
}

func (c *Cluster) path(p string) string { return filepath.Join(c.cfg.Dir, p) }
func (c *Cluster) run(p string) string  { return filepath.Join(c.cfg.RunDir, p) }

// ContainerdSocket is the CRI runtime's socket.
func (c *Cluster) ContainerdSocket() string { return c.run("containerd.sock") }

// Kubeconfig is the cluster-admin kubeconfig.
func (c *Cluster) Kubeconfig() string { return c.path("admin.kubeconfig") }

// Kubectl is the kubectl binary.
func (c *Cluster) Kubectl() string { return filepath.Join(c.cfg.KubeBin, "kubectl") }

// Up starts the cluster and waits for its node to be ready. On error what
// was started is stopped again.
func Up(ctx context.Context, cfg Config) (c *Cluster, err error) {
	if cfg.Dir == "" {
		cfg.Dir = "/var/lib/" + clusterMarker
	}
	if cfg.RunDir == "" {
		cfg.RunDir = "/run/" + clusterMarker
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	c = &Cluster{cfg: cfg}
	if _, err := os.Stat(cfg.Dir); err == nil {
		return nil, fmt.Errorf("%s exists: a cluster runs, or an earlier run did not clean up (its Down removes it)", cfg.Dir)
	}
	begin := time.Now()
	c.before = SnapshotHost(cfg.KubeBin)
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Down())
		}
	}()
	for _, step := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"files", func(context.Context) error { return c.prepare() }},
		{"network", func(context.Context) error { return setUpNetwork() }},
		{"bpffs", func(context.Context) error { return c.prepareBPFFS() }},
		{"etcd", c.startEtcd},
		{"kube-apiserver", c.startAPIServer},
		{"controllers", c.startControllers},
		{"containerd", c.startContainerd},
		{"images", c.importImages},
		{"kubelet", c.startKubelet},
	} {
		t := time.Now()
		if err := step.run(ctx); err != nil {
			return c, fmt.Errorf("cluster %s: %w", step.name, err)
		}
		cfg.Logf("cluster: %s ready after %s", step.name, time.Since(t).Round(time.Millisecond))
	}
	c.Started = time.Since(begin)
	return c, nil
}

// prepare makes the directories, certificates and configuration files.
func (c *Cluster) prepare() error {
	for _, d := range []string{c.cfg.Dir, c.cfg.RunDir, c.path("pki"), c.path("logs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	p, err := newPKI(c.path("pki"))
	if err != nil {
		return err
	}
	node := []net.IP{net.ParseIP(NodeIP)}
	issued := []struct {
		name, cn string
		orgs     []string
		ips      []net.IP
		dns      []string
	}{
		{"apiserver", "kube-apiserver", nil, append(node, net.ParseIP(apiServiceIP), net.ParseIP("127.0.0.1")),
			[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}},
		{"kubelet", "system:node:" + NodeName, []string{"system:nodes"}, node, []string{NodeName}},
		// One client identity for every component: the test cluster has a
		// single trusted user, and RBAC is exercised by the agent's own
		// service account.
		{"admin", "admin", []string{"system:masters"}, nil, nil},
	}
	for _, i := range issued {
		if err := p.issue(i.name, i.cn, i.orgs, i.ips, i.dns); err != nil {
			return err
		}
	}
	return c.files()
}

func (c *Cluster) bin(name string) string { return filepath.Join(c.cfg.KubeBin, name) }

// spawn starts a component and keeps it for Down.
func (c *Cluster) spawn(name, bin string, args ...string) (*proc, error) {
	p, err := start(c.path("logs"), name, bin, args...)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

// KubectlCmd is a kubectl command against the cluster.
func (c *Cluster) KubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, c.Kubectl(), append([]string{"--kubeconfig", c.Kubeconfig()}, args...)...)
}

// Run runs kubectl and returns its combined output.
func (c *Cluster) Run(ctx context.Context, args ...string) (string, error) {
	out, err := c.KubectlCmd(ctx, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// LogTail is the end of a component's log, for a failure message.
func (c *Cluster) LogTail(name string, lines int) string {
	return tail(c.path("logs/"+name+".log"), lines)
}
