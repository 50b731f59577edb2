package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
)

var daemonSetResource = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}

// dsSeen is what the agent last saw of the DaemonSet that runs it.
type dsSeen struct {
	// err: it could not be looked at (not a NotFound).
	err      error
	found    bool
	uid      string
	deleting bool // its deletionTimestamp is set
}

func seenOf(u *unstructured.Unstructured) dsSeen {
	return dsSeen{found: true, uid: string(u.GetUID()), deleting: u.GetDeletionTimestamp() != nil}
}

// uninstallDecision decides, as the daemon stops, whether it removes the
// pinned state: only when the DaemonSet that runs it (owner, from its own
// pod) is gone, being deleted, or replaced by another object of the same
// name, that is when the agent is being uninstalled. A rolling update, a
// restart, an eviction of the pod, or anything the agent cannot tell, keeps
// the rules in force for the next daemon.
func uninstallDecision(owner *Controller, seen dsSeen) (bool, string) {
	switch {
	case owner == nil || owner.Kind != "DaemonSet" || owner.UID == "":
		return false, "the agent's pod is not known to be run by a DaemonSet: the pins stay"
	case seen.err != nil:
		return false, fmt.Sprintf("DaemonSet %s could not be looked at (%v): the pins stay", owner.Name, seen.err)
	case !seen.found:
		return true, fmt.Sprintf("DaemonSet %s is deleted: the pins are removed", owner.Name)
	case seen.uid != owner.UID:
		return true, fmt.Sprintf("DaemonSet %s that ran this pod (uid %s) is deleted, another of its name exists: the pins are removed", owner.Name, owner.UID)
	case seen.deleting:
		return true, fmt.Sprintf("DaemonSet %s is being deleted: the pins are removed", owner.Name)
	}
	return false, fmt.Sprintf("DaemonSet %s is in place (a rolling update, a restart): the pins stay for the next daemon", owner.Name)
}

// ownerWatch follows the DaemonSet that runs the agent, once the agent's
// own pod is in the pod index: a watch made before the stop, so that the
// decision does not rest on one request made while the agent's RBAC and
// service account may already be deleted with it.
type ownerWatch struct {
	dyn     dynamic.Interface
	pods    *PodIndex
	selfUID string

	mu       sync.Mutex
	owner    *Controller
	ns       string
	informer cache.SharedIndexInformer
}

// run waits for the agent's pod in the index, then watches its DaemonSet
// (by name, in its namespace) until ctx ends.
func (o *ownerWatch) run(ctx context.Context) {
	var self Pod
	for {
		p, ok := o.pods.Lookup(o.selfUID)
		if ok {
			self = p
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	c := self.Controller
	if c == nil || c.Kind != "DaemonSet" {
		o.mu.Lock()
		o.owner, o.ns = c, self.Namespace
		o.mu.Unlock()
		return
	}
	inf := newNamespacedInformer(o.dyn.Resource(daemonSetResource).Namespace(self.Namespace), o.dyn, func(lo *metav1.ListOptions) {
		lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", c.Name).String()
	})
	o.mu.Lock()
	o.owner, o.ns, o.informer = c, self.Namespace, inf
	o.mu.Unlock()
	inf.RunWithContext(ctx)
}

// gone reports whether the watch has seen the DaemonSet deleted or being
// deleted (no request made).
func (o *ownerWatch) gone() bool {
	o.mu.Lock()
	owner, ns, inf := o.owner, o.ns, o.informer
	o.mu.Unlock()
	if owner == nil || inf == nil || !inf.HasSynced() {
		return false
	}
	obj, ok, err := inf.GetStore().GetByKey(ns + "/" + owner.Name)
	if err != nil {
		return false
	}
	seen := dsSeen{}
	if ok {
		seen = seenOf(obj.(*unstructured.Unstructured))
	}
	del, _ := uninstallDecision(owner, seen)
	return del
}

// decide is uninstallDecision on what the watch saw, confirmed by a
// request when the watch saw the DaemonSet in place (a deletion the watch
// has not delivered yet); a failed request leaves the watch's view.
func (o *ownerWatch) decide(ctx context.Context) (bool, string) {
	o.mu.Lock()
	owner, ns, inf := o.owner, o.ns, o.informer
	o.mu.Unlock()
	if owner == nil || inf == nil {
		return uninstallDecision(owner, dsSeen{})
	}
	var seen dsSeen
	if !inf.HasSynced() {
		seen.err = errors.New("its watch never listed it")
	} else if obj, ok, err := inf.GetStore().GetByKey(ns + "/" + owner.Name); err != nil {
		seen.err = err
	} else if ok {
		seen = seenOf(obj.(*unstructured.Unstructured))
	}
	if del, _ := uninstallDecision(owner, seen); del {
		return uninstallDecision(owner, seen)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	u, err := o.dyn.Resource(daemonSetResource).Namespace(ns).Get(ctx, owner.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		seen = dsSeen{}
	case err == nil:
		seen = seenOf(u)
	}
	return uninstallDecision(owner, seen)
}
