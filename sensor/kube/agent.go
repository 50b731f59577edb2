package kube

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfence/ringfence/sensor/container"
)

// Sensor is what the agent drives: the policy set and pod labels.
type Sensor interface {
	Applier
	SetPodLabels(func(container.Info) map[string]string)
	SetExemptPods(func(container.Info) bool)
	ReapplyPod(uid string) error
}

// Agent is the running Kubernetes side of the daemon.
type Agent struct {
	Policies *PolicyWatcher
	Pods     *PodIndex
	owner    *ownerWatch
}

// Start connects to the API server, starts the informers and, as they
// deliver, applies the RuntimePolicy objects and gives the sensor pod
// labels. Everything stops when ctx ends. It returns an error when the
// configuration cannot be loaded; an unreachable API server is retried by
// the informers, and the agent is not Ready until the objects are applied.
func Start(ctx context.Context, f Flags, s Sensor, log *slog.Logger) (*Agent, error) {
	c, err := newClient(f.Kubeconfig, "ringfence/"+f.NodeName)
	if err != nil {
		return nil, err
	}
	return start(ctx, c, f, s, log), nil
}

// start is Start with a client.
func start(ctx context.Context, c *client, f Flags, s Sensor, log *slog.Logger) *Agent {
	policies := newInformer(c, PolicyResource, "", "", log)
	rec := newRecorder(c, f.NodeName, log)
	pw := newPolicyWatcher(policies, s, rec, f.NodeName, log)
	// Only this node's pods: the API server filters, so the agent's memory
	// and traffic do not grow with the cluster.
	podInformer := newInformer(c, podResource, "", "spec.nodeName="+f.NodeName, log)
	pods := newPodIndex(podInformer, f.PodWait, func(uid string) {
		if err := s.ReapplyPod(uid); err != nil {
			log.Error("pod labels changed: apply policy", "pod_uid", uid, "error", err)
		}
	})
	s.SetPodLabels(pods.Labels)
	a := &Agent{Policies: pw, Pods: pods}
	if f.PodUID != "" {
		// The next agent of a rolling update starts while this one runs:
		// its containers are exempt, never held waiting for it.
		s.SetExemptPods(func(info container.Info) bool { return pods.Sibling(f.PodUID, info) })
		a.owner = &ownerWatch{c: c, pods: pods, selfUID: f.PodUID, log: log}
		go a.owner.run(ctx)
	}
	go rec.run(ctx)
	go policies.run(ctx)
	go podInformer.run(ctx)
	go pw.Run(ctx)
	return a
}

// UninstallOnStop says whether the daemon, stopping, removes its pinned
// state: only when the DaemonSet that runs it is deleted or being deleted
// (uninstallDecision); and why.
func (a *Agent) UninstallOnStop(ctx context.Context) (bool, string) {
	if a.owner == nil {
		return false, "--pod-uid not given: the agent does not know its DaemonSet, the pins stay"
	}
	return a.owner.decide(ctx)
}

// AwaitSuccessor keeps a stopping agent (its pod deleted or evicted, its
// DaemonSet in place) until the DaemonSet's next pod on this node is
// exempt (exempt reports whether the sensor exempted a pod's cgroup), at
// most until ctx ends: the DaemonSet makes that pod as soon as this one is being
// deleted, and a pod made once no daemon runs would be held by the pinned
// programs with nobody to let it go. It reports whether it saw one, and
// what it saw.
//
// It returns at once when there is nothing to wait for: the agent's own
// pod unknown, or not being deleted within 3 s (its container
// restarted or stopped in place: the pod's cgroup is exempt, so is the
// restart), or its DaemonSet deleted meanwhile (an uninstall).
func (a *Agent) AwaitSuccessor(ctx context.Context, self string, exempt func(uid string) bool) (bool, string) {
	start := time.Now()
	deleting := start.Add(3 * time.Second)
	for {
		me, ok := a.Pods.Lookup(self)
		switch {
		case !ok:
			return false, "the agent's own pod is not known: no next pod to wait for"
		case !me.Deleting && time.Now().After(deleting):
			return false, "the agent's pod is not being deleted (its container stops in place): no next pod to wait for"
		case a.owner != nil && a.owner.gone():
			return false, "the DaemonSet is being deleted: no next pod"
		}
		succ := a.Pods.Successors(self)
		for _, p := range succ {
			if exempt(p.UID) {
				return true, fmt.Sprintf("the next pod of the DaemonSet on this node (%s/%s) is exempt", p.Namespace, p.Name)
			}
		}
		select {
		case <-ctx.Done():
			waited := time.Since(start).Round(100 * time.Millisecond)
			if len(succ) == 0 {
				return false, fmt.Sprintf("no next pod of the DaemonSet on this node after %s", waited)
			}
			return false, fmt.Sprintf("the next pod of the DaemonSet on this node (%s) has no container exempt yet after %s", succ[0].Name, waited)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Ready reports whether the objects as first listed have been applied.
func (a *Agent) Ready() bool { return a.Policies.Synced() && a.Pods.informer.hasSynced() }

// Collectors are the agent's metrics.
func (a *Agent) Collectors() []prometheus.Collector {
	return []prometheus.Collector{a.Policies.refused}
}
