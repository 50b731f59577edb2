package cluster

import (
	"fmt"
	"os"
	"path/filepath"
)

// NodeName is the single node's name.
const NodeName = "ringfence-node"

// Ports of the components on this machine.
const (
	etcdClientPort = 23791
	etcdPeerPort   = 23801
	apiPort        = 6443
)

// files writes every configuration file of the cluster under c.dir.
func (c *Cluster) files() error {
	files := map[string]string{
		"admin.kubeconfig":          kubeconfig(c.path("pki/ca.crt"), c.path("pki/admin.crt"), c.path("pki/admin.key")),
		"containerd.toml":           c.containerdConfig(),
		"kubelet.yaml":              c.kubeletConfig(),
		"kube-proxy.yaml":           c.proxyConfig(),
		"cni/10-ringfence.conflist": c.cniConfig(),
		// No upstream resolver: nothing in a pod may send a DNS query off
		// the machine.
		"resolv.conf": "",
	}
	for name, content := range files {
		p := c.path(name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func kubeconfig(ca, cert, key string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: ringfence-test
  cluster: {server: "https://%s:%d", certificate-authority: %q}
users:
- name: admin
  user: {client-certificate: %q, client-key: %q}
contexts:
- name: ringfence-test
  context: {cluster: ringfence-test, user: admin}
current-context: ringfence-test
`, NodeIP, apiPort, ca, cert, key)
}

// containerdConfig enables the CRI plugin on containerd's own root, state
// and socket. restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, so
// lowering a container's oom_score_adj would fail.
func (c *Cluster) containerdConfig() string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, c.path("containerd/root"), c.run("containerd/state"), c.ContainerdSocket(), c.path("containerd/opt"), PauseImage, c.path("cni"))
}

// kubeletConfig: cgroupfs and failCgroupV1 false because this host's hybrid
// cgroup layout counts as v1 for the kubelet; image garbage collection off
// because imported images cannot be pulled again; oomScoreAdj 0 for the
// same reason as containerd's restriction.
func (c *Cluster) kubeletConfig() string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: %q
tlsPrivateKeyFile: %q
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %q}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
oomScoreAdj: 0
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%"}
resolvConf: %q
podLogsDir: %q
serializeImagePulls: false
`, NodeIP, c.path("pki/kubelet.crt"), c.path("pki/kubelet.key"), c.path("pki/ca.crt"), c.ContainerdSocket(), c.path("resolv.conf"), c.path("pod-logs"))
}

// proxyConfig: nftables mode; conntrack settings 0 leave the kernel's as
// they are.
func (c *Cluster) proxyConfig() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: %q}
hostnameOverride: %s
clusterCIDR: %s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["%s/32"]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`, c.path("admin.kubeconfig"), NodeName, podCIDR, NodeIP)
}

// cniConfig: pods on their own bridge, no masquerade and no default route:
// a pod reaches its bridge and nothing beyond.
func (c *Cluster) cniConfig() string {
	return fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "ringfence-test", "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": %q,
            "ranges": [[{"subnet": %q, "gateway": %q}]]}}]}
`, podBridge, c.path("cni-ipam"), podCIDR, podGateway)
}
