package kube

import (
	"context"
	"maps"
	"time"

	"github.com/ringfence/ringfence/sensor/container"
)

// Pod is what the index keeps of a pod: its identity and labels, no more,
// so that its memory grows with the node's pods and their labels only.
type Pod struct {
	UID, Name, Namespace string
	Labels               map[string]string
	// Controller is the owner that manages the pod (its ownerReference
	// with controller set), if any.
	Controller *Controller
	// Deleting: the pod's deletionTimestamp is set.
	Deleting bool
}

// Controller is a pod's managing owner.
type Controller struct {
	APIVersion, Kind, Name, UID string
}

// PodIndex answers, for a container of this node, its pod's identity and
// labels, from an informer on the node's pods.
type PodIndex struct {
	informer *informer
	wait     time.Duration
}

// newPodIndex indexes the pods informer lists (which the caller restricts
// to the node). onLabels is called with a pod's uid when it appears or its
// labels change, so that its containers are matched again.
func newPodIndex(inf *informer, wait time.Duration, onLabels func(uid string)) *PodIndex {
	inf.keep = slimPod
	inf.addHandler(handler{
		add: func(p *Object) { onLabels(p.Metadata.UID) },
		update: func(old, cur *Object) {
			if !maps.Equal(old.Metadata.Labels, cur.Metadata.Labels) {
				onLabels(cur.Metadata.UID)
			}
		},
	})
	return &PodIndex{informer: inf, wait: wait}
}

// slimPod keeps of a pod only what the index answers with.
func slimPod(p *Object) *Object {
	slim := &Object{APIVersion: p.APIVersion, Kind: p.Kind, Metadata: Meta{
		Name: p.Metadata.Name, Namespace: p.Metadata.Namespace, UID: p.Metadata.UID,
		ResourceVersion: p.Metadata.ResourceVersion, Labels: p.Metadata.Labels,
		DeletionTimestamp: p.Metadata.DeletionTimestamp,
	}}
	if c := p.controller(); c != nil {
		slim.Metadata.OwnerReferences = []OwnerReference{*c}
	}
	return slim
}

// Lookup returns the pod with this uid, if the index has it.
func (x *PodIndex) Lookup(uid string) (Pod, bool) {
	p, ok := x.informer.getByUID(uid)
	if !ok {
		return Pod{}, false
	}
	return podOf(p), true
}

// podOf is what the index answers of a pod object.
func podOf(p *Object) Pod {
	m := p.Metadata
	pod := Pod{UID: m.UID, Name: m.Name, Namespace: m.Namespace, Labels: maps.Clone(m.Labels), Deleting: m.DeletionTimestamp != nil}
	if c := p.controller(); c != nil {
		pod.Controller = &Controller{APIVersion: c.APIVersion, Kind: c.Kind, Name: c.Name, UID: c.UID}
	}
	return pod
}

// wait returns the pod with this uid, waiting at most the index's wait for
// it to reach the index.
func (x *PodIndex) waitFor(uid string) (Pod, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), x.wait)
	defer cancel()
	for {
		if p, ok := x.Lookup(uid); ok {
			return p, true
		}
		select {
		case <-ctx.Done():
			return Pod{}, false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Labels are the labels a container's selectors match: its runtime labels
// with its pod's labels over them. A container of a pod the index does not
// have yet waits for it, at most the index's wait: it is called while the
// container's first exec is held, and a pod whose labels come later has
// its containers matched again then.
func (x *PodIndex) Labels(info container.Info) map[string]string {
	uid := info.Labels[container.LabelPodUID]
	if uid == "" {
		return info.Labels
	}
	p, ok := x.waitFor(uid)
	if !ok {
		return info.Labels
	}
	out := maps.Clone(info.Labels)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, p.Labels)
	return out
}

// Sibling reports whether a container belongs to another pod of the
// DaemonSet that runs the agent (self, the agent's own pod uid): the pod
// of the next agent in a rolling update, which the agent in charge must
// neither hold nor judge. It waits for the container's pod like Labels; a
// pod not known in time is no sibling (it is judged, and looked at again
// when it arrives, ReapplyPod).
func (x *PodIndex) Sibling(self string, info container.Info) bool {
	uid := info.Labels[container.LabelPodUID]
	if self == "" || uid == "" {
		return false
	}
	me, ok := x.Lookup(self)
	if !ok {
		return false
	}
	other, ok := x.waitFor(uid)
	return ok && sameDaemonSet(me, other)
}

// Successors lists the pods of self's DaemonSet on this node (the index
// holds the node's pods only) other than self and not being deleted: the
// agent that replaces self is among them.
func (x *PodIndex) Successors(self string) []Pod {
	me, ok := x.Lookup(self)
	if !ok {
		return nil
	}
	var out []Pod
	for _, obj := range x.informer.list() {
		if p := podOf(obj); p.UID != self && !p.Deleting && sameDaemonSet(me, p) {
			out = append(out, p)
		}
	}
	return out
}

// sameDaemonSet is Sibling's decision: other is managed by the very
// DaemonSet object (by uid, not by name or labels, which anyone creating
// pods chooses) that manages self, in self's namespace.
func sameDaemonSet(self, other Pod) bool {
	a, b := self.Controller, other.Controller
	return a != nil && b != nil && a.UID != "" && a.UID == b.UID &&
		a.Kind == "DaemonSet" && b.Kind == "DaemonSet" &&
		self.Namespace != "" && self.Namespace == other.Namespace
}
