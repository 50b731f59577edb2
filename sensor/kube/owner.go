package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// dsSeen is what the agent last saw of the DaemonSet that runs it.
type dsSeen struct {
	// err: it could not be looked at (not a NotFound).
	err      error
	found    bool
	uid      string
	deleting bool // its deletionTimestamp is set
}

func seenOf(o *Object) dsSeen {
	return dsSeen{found: true, uid: o.Metadata.UID, deleting: o.Metadata.DeletionTimestamp != nil}
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
	c       *client
	pods    *PodIndex
	selfUID string
	log     *slog.Logger

	mu       sync.Mutex
	owner    *Controller
	ns       string
	informer *informer
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
	inf := newInformer(o.c, daemonSetResource, self.Namespace, "metadata.name="+c.Name, o.log)
	o.mu.Lock()
	o.owner, o.ns, o.informer = c, self.Namespace, inf
	o.mu.Unlock()
	inf.run(ctx)
}

// gone reports whether the watch has seen the DaemonSet deleted or being
// deleted (no request made).
func (o *ownerWatch) gone() bool {
	o.mu.Lock()
	owner, ns, inf := o.owner, o.ns, o.informer
	o.mu.Unlock()
	if owner == nil || inf == nil || !inf.hasSynced() {
		return false
	}
	seen := dsSeen{}
	if obj, ok := inf.get(ns + "/" + owner.Name); ok {
		seen = seenOf(obj)
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
	if !inf.hasSynced() {
		seen.err = errors.New("its watch never listed it")
	} else if obj, ok := inf.get(ns + "/" + owner.Name); ok {
		seen = seenOf(obj)
	}
	if del, _ := uninstallDecision(owner, seen); del {
		return uninstallDecision(owner, seen)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	u, err := o.c.get(ctx, daemonSetResource, ns, owner.Name)
	switch {
	case isStatus(err, http.StatusNotFound):
		seen = dsSeen{}
	case err == nil:
		seen = seenOf(u)
	}
	return uninstallDecision(owner, seen)
}
