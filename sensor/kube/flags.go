package kube

import (
	"errors"
	"flag"
	"time"
)

// Flags are the daemon's Kubernetes settings.
type Flags struct {
	// Enabled turns the Kubernetes sources on.
	Enabled bool
	// Kubeconfig is a kubeconfig file; empty means the pod's in-cluster
	// service account.
	Kubeconfig string
	// NodeName is the node the agent runs on (the downward API's
	// spec.nodeName): only its pods are watched.
	NodeName string
	// PodUID is the agent's own pod (the downward API's metadata.uid):
	// the other pods of its DaemonSet are exempt, and its DaemonSet's
	// deletion is an uninstall.
	PodUID string
	// PodWait bounds how long a new container waits, its first exec held,
	// for its pod to reach the index.
	PodWait time.Duration
	// HandoverWait bounds how long an agent whose pod is deleted while its
	// DaemonSet stays keeps running, until the DaemonSet's next pod on the
	// node is exempt.
	HandoverWait time.Duration
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.BoolVar(&f.Enabled, "kubernetes", false, "watch RuntimePolicy objects and this node's pods through the Kubernetes API (policies as objects, pod labels in selectors)")
	fs.StringVar(&f.Kubeconfig, "kubeconfig", "", "kubeconfig `FILE` for --kubernetes (empty: the pod's service account)")
	fs.StringVar(&f.NodeName, "node-name", "", "this node's name for --kubernetes (in a pod: the downward API's spec.nodeName)")
	fs.StringVar(&f.PodUID, "pod-uid", "", "the agent's own pod uid for --kubernetes (in a pod: the downward API's metadata.uid): the other pods of its DaemonSet are never held or judged, and when its DaemonSet is deleted a stopping agent removes its pins")
	fs.DurationVar(&f.PodWait, "pod-wait", time.Second, "longest a new container waits for its pod's labels to be known (--kubernetes)")
	fs.DurationVar(&f.HandoverWait, "handover-wait", 20*time.Second, "when the agent's pod is deleted while its DaemonSet stays (kubectl delete pod, a drain), how long the stopping agent keeps enforcing until the DaemonSet's next pod on this node is exempt, so that pod is never held waiting for a daemon (--kubernetes with --pod-uid; keep it below the pod's terminationGracePeriodSeconds)")
}

// Validate checks the flags once parsed.
func (f *Flags) Validate() error {
	switch {
	case !f.Enabled && (f.Kubeconfig != "" || f.NodeName != "" || f.PodUID != ""):
		return errors.New("--kubeconfig, --node-name and --pod-uid need --kubernetes")
	case f.Enabled && f.NodeName == "":
		return errors.New("--node-name: required with --kubernetes (set it from the downward API's spec.nodeName)")
	case f.PodWait < 0:
		return errors.New("--pod-wait: negative")
	case f.HandoverWait < 0:
		return errors.New("--handover-wait: negative")
	}
	return nil
}
