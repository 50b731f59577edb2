package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

func (c *Cluster) startEtcd(ctx context.Context) error {
	client := "http://127.0.0.1:" + strconv.Itoa(etcdClientPort)
	peer := "http://127.0.0.1:" + strconv.Itoa(etcdPeerPort)
	p, err := c.spawn("etcd", "etcd", "--name", "ringfence-test", "--data-dir", c.path("etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "ringfence-test="+peer, "--listen-metrics-urls", "")
	if err != nil {
		return err
	}
	return waitFor(ctx, p, "answering", func() error {
		return httpOK(ctx, client+"/health")
	})
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	pki := func(f string) string { return c.path("pki/" + f) }
	p, err := c.spawn("kube-apiserver", c.bin("kube-apiserver"),
		"--etcd-servers", "http://127.0.0.1:"+strconv.Itoa(etcdClientPort),
		"--bind-address", NodeIP, "--advertise-address", NodeIP, "--secure-port", strconv.Itoa(apiPort),
		"--cert-dir", c.path("apiserver"),
		"--tls-cert-file", pki("apiserver.crt"), "--tls-private-key-file", pki("apiserver.key"),
		"--client-ca-file", pki("ca.crt"),
		"--service-account-key-file", pki("sa.pub"), "--service-account-signing-key-file", pki("sa.key"),
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-cluster-ip-range", serviceCIDR,
		"--authorization-mode", "RBAC",
		"--kubelet-client-certificate", pki("admin.crt"), "--kubelet-client-key", pki("admin.key"),
		// The node's host name resolves to 127.0.0.1 here.
		"--kubelet-preferred-address-types", "InternalIP",
		"--allow-privileged=true", "--profiling=false")
	if err != nil {
		return err
	}
	return waitFor(ctx, p, "ready", func() error {
		_, err := c.Run(ctx, "get", "--raw", "/readyz")
		return err
	})
}

// startControllers starts the controller manager, the scheduler and
// kube-proxy, which gives in-cluster clients the kubernetes Service.
func (c *Cluster) startControllers(ctx context.Context) error {
	kc := c.Kubeconfig()
	if _, err := c.spawn("kube-controller-manager", c.bin("kube-controller-manager"),
		"--kubeconfig", kc, "--leader-elect=false", "--bind-address", "127.0.0.1",
		"--cert-dir", c.path("controller-manager"),
		"--service-account-private-key-file", c.path("pki/sa.key"), "--root-ca-file", c.path("pki/ca.crt"),
		"--cluster-signing-cert-file", c.path("pki/ca.crt"), "--cluster-signing-key-file", c.path("pki/ca.key"),
		"--service-cluster-ip-range", serviceCIDR); err != nil {
		return err
	}
	if _, err := c.spawn("kube-scheduler", c.bin("kube-scheduler"),
		"--kubeconfig", kc, "--leader-elect=false", "--bind-address", "127.0.0.1"); err != nil {
		return err
	}
	_, err := c.spawn("kube-proxy", c.bin("kube-proxy"), "--config", c.path("kube-proxy.yaml"))
	return err
}

func (c *Cluster) startContainerd(ctx context.Context) error {
	p, err := c.spawn("containerd", "containerd", "--config", c.path("containerd.toml"))
	if err != nil {
		return err
	}
	return waitFor(ctx, p, "answering", func() error {
		return exec.CommandContext(ctx, "ctr", "--connect-timeout", "1s", "-a", c.ContainerdSocket(), "version").Run()
	})
}

// Import loads an image archive into the CRI's image namespace.
func (c *Cluster) Import(ctx context.Context, archive string) error {
	out, err := exec.CommandContext(ctx, "ctr", "-a", c.ContainerdSocket(), "-n", "k8s.io", "images", "import", archive).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import %s: %v: %s", archive, err, out)
	}
	return nil
}

func (c *Cluster) startKubelet(ctx context.Context) error {
	p, err := c.spawn("kubelet", c.bin("kubelet"), "--config", c.path("kubelet.yaml"),
		"--kubeconfig", c.Kubeconfig(), "--hostname-override", NodeName, "--node-ip", NodeIP,
		"--root-dir", c.path("kubelet"), "--cert-dir", c.path("kubelet-pki"))
	if err != nil {
		return err
	}
	return waitFor(ctx, p, "its node ready", func() error {
		out, err := c.Run(ctx, "get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err == nil && strings.TrimSpace(out) != "True" {
			err = fmt.Errorf("node not ready: %q", out)
		}
		return err
	})
}

// WaitRollout waits for a DaemonSet's rollout with kubectl.
func (c *Cluster) WaitRollout(ctx context.Context, namespace, name string, timeout time.Duration) error {
	_, err := c.Run(ctx, "-n", namespace, "rollout", "status", "daemonset/"+name, "--timeout", timeout.String())
	return err
}

// httpOK gets url and fails unless it answers 200.
func httpOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
