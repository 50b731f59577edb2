package kube

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/container"
)

func ds(uid string) *Controller {
	return &Controller{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "ringfence", UID: uid}
}

// TestSameDaemonSet: only a pod managed by the very DaemonSet object of
// the agent's pod, in its namespace, is a sibling; a name, labels, another
// kind of owner or another namespace are not enough.
func TestSameDaemonSet(t *testing.T) {
	self := Pod{UID: "p1", Name: "ringfence-a", Namespace: "ringfence", Labels: map[string]string{"app": "rf"}, Controller: ds("d1")}
	tests := []struct {
		name  string
		other Pod
		want  bool
	}{
		{"next agent", Pod{UID: "p2", Namespace: "ringfence", Controller: ds("d1")}, true},
		{"itself", self, true},
		{"another DaemonSet of the same name", Pod{UID: "p3", Namespace: "ringfence", Controller: ds("d2")}, false},
		{"same labels and name, no owner", Pod{UID: "p4", Name: "ringfence-a", Namespace: "ringfence", Labels: map[string]string{"app": "rf"}}, false},
		{"same uid, other namespace", Pod{UID: "p5", Namespace: "default", Controller: ds("d1")}, false},
		{"same uid, not a DaemonSet", Pod{UID: "p6", Namespace: "ringfence", Controller: &Controller{Kind: "ReplicaSet", Name: "ringfence", UID: "d1"}}, false},
	}
	for _, tt := range tests {
		if got := sameDaemonSet(self, tt.other); got != tt.want {
			t.Errorf("%s: sameDaemonSet = %v, want %v", tt.name, got, tt.want)
		}
	}
	for _, s := range []Pod{
		{UID: "p1", Namespace: "ringfence"},                            // not run by a controller
		{UID: "p1", Namespace: "ringfence", Controller: ds("")},        // an owner without uid
		{UID: "p1", Controller: ds("d1")},                              // no namespace
		{UID: "p1", Namespace: "ringfence", Controller: &Controller{}}, // no kind
	} {
		if sameDaemonSet(s, Pod{UID: "p2", Namespace: s.Namespace, Controller: s.Controller}) {
			t.Errorf("agent pod %+v: another pod counted as a sibling", s)
		}
	}
}

func ownedPod(name, ns, uid string, owner *Controller) map[string]any {
	u := podObject(uid, map[string]string{"app.kubernetes.io/name": "ringfence"})
	md := u["metadata"].(map[string]any)
	md["name"], md["namespace"] = name, ns
	if owner != nil {
		md["ownerReferences"] = []any{
			map[string]any{"apiVersion": "v1", "kind": "Node", "name": "node1", "uid": "n1"}, // an owner, not the controller
			map[string]any{"apiVersion": owner.APIVersion, "kind": owner.Kind, "name": owner.Name, "uid": owner.UID, "controller": true},
		}
	}
	return u
}

// syncedPodIndex returns a pod index of node1 over the fake API, given
// pods first, once its informer has synced; the informer stops when the
// test ends.
func syncedPodIndex(t *testing.T, api *fakeAPI, wait time.Duration, onLabels func(uid string), pods ...map[string]any) *PodIndex {
	t.Helper()
	for _, p := range pods {
		api.put("pods", p)
	}
	informer := newInformer(api.client(), podResource, "", "spec.nodeName=node1", quiet())
	idx := newPodIndex(informer, wait, onLabels)
	go informer.run(t.Context())
	waitFor(t, "the pod informer's first list", informer.hasSynced)
	return idx
}

// TestSibling: through the pod index (the informer's slim pods keep the
// controller reference), a container of the next agent's pod is a
// sibling, one of a pod that copies the agent's name and labels is not,
// and without the agent's own pod nothing is.
func TestSibling(t *testing.T) {
	idx := syncedPodIndex(t, newFakeAPI(t), 100*time.Millisecond, func(string) {},
		ownedPod("ringfence-a", "ringfence", "self", ds("d1")),
		ownedPod("ringfence-b", "ringfence", "next", ds("d1")),
		ownedPod("ringfence-c", "ringfence", "copy", nil),
		ownedPod("ringfence-d", "other", "elsewhere", ds("d1")))
	of := func(uid string) container.Info {
		return container.Info{Labels: map[string]string{container.LabelPodUID: uid}}
	}
	if p, _ := idx.Lookup("next"); p.Controller == nil || p.Controller.UID != "d1" || p.Controller.Kind != "DaemonSet" {
		t.Fatalf("the index lost the controller reference: %+v", p)
	}
	for uid, want := range map[string]bool{"next": true, "copy": false, "elsewhere": false, "unknown": false, "": false} {
		if got := idx.Sibling("self", of(uid)); got != want {
			t.Errorf("pod %q: Sibling = %v, want %v", uid, got, want)
		}
	}
	if idx.Sibling("", of("next")) || idx.Sibling("not-in-index", of("next")) {
		t.Error("a sibling without the agent's own pod known")
	}
}

// TestUninstallDecision: the pins go only when the agent's DaemonSet is
// gone, being deleted, or another object under its name; a rolling update
// (the DaemonSet in place) and whatever cannot be told keep them.
func TestUninstallDecision(t *testing.T) {
	tests := []struct {
		name  string
		owner *Controller
		seen  dsSeen
		want  bool
	}{
		{"rolling update", ds("d1"), dsSeen{found: true, uid: "d1"}, false},
		{"deleted", ds("d1"), dsSeen{}, true},
		{"being deleted", ds("d1"), dsSeen{found: true, uid: "d1", deleting: true}, true},
		{"deleted and made again", ds("d1"), dsSeen{found: true, uid: "d2"}, true},
		{"lookup failed", ds("d1"), dsSeen{err: context.DeadlineExceeded}, false},
		{"no owner known", nil, dsSeen{}, false},
		{"owner not a DaemonSet", &Controller{Kind: "ReplicaSet", Name: "x", UID: "r1"}, dsSeen{}, false},
	}
	for _, tt := range tests {
		got, why := uninstallDecision(tt.owner, tt.seen)
		if got != tt.want || why == "" {
			t.Errorf("%s: %v (%s), want %v", tt.name, got, why, tt.want)
		}
	}
}

func dsObject(uid string) map[string]any {
	return map[string]any{"apiVersion": "apps/v1", "kind": "DaemonSet",
		"metadata": map[string]any{"name": "ringfence", "namespace": "ringfence", "uid": uid}}
}

// TestOwnerWatchDecides: the agent finds its DaemonSet from its own pod,
// watches it, and decides from what it sees: in place keeps the pins, a
// deletion removes them, and one it cannot look at keeps them.
func TestOwnerWatchDecides(t *testing.T) {
	api := newFakeAPI(t)
	api.put("daemonsets", dsObject("d1"))
	api.put("daemonsets", map[string]any{"metadata": map[string]any{"name": "other", "namespace": "ringfence", "uid": "d9"}})
	informer := newInformer(api.client(), podResource, "", "", quiet())
	idx := newPodIndex(informer, 100*time.Millisecond, func(string) {})
	ctx := t.Context()
	o := &ownerWatch{c: api.client(), pods: idx, selfUID: "self", log: quiet()}
	if del, why := o.decide(ctx); del {
		t.Errorf("before the agent's pod is known: uninstall (%s)", why)
	}
	api.put("pods", ownedPod("ringfence-a", "ringfence", "self", ds("d1")))
	go informer.run(ctx)
	go o.run(ctx)
	waitFor(t, "the DaemonSet's watch", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.informer != nil && o.informer.hasSynced()
	})
	if n := len(o.informer.list()); n != 1 {
		t.Errorf("the watch holds %d DaemonSets, want its own only (a field selector on its name)", n)
	}
	if del, why := o.decide(ctx); del || !strings.Contains(why, "in place") {
		t.Errorf("DaemonSet in place: uninstall %v (%s)", del, why)
	}
	api.failing("daemonsets", 500)
	if del, why := o.decide(ctx); del || !strings.Contains(why, "in place") {
		t.Errorf("DaemonSet in place, its request failing: uninstall %v (%s), want the watch's view", del, why)
	}
	api.failing("daemonsets", 0)
	api.del("daemonsets", "ringfence/ringfence")
	if del, why := o.decide(ctx); !del || !strings.Contains(why, "deleted") {
		t.Errorf("DaemonSet deleted: uninstall %v (%s)", del, why)
	}
	waitFor(t, "the watch to see the deletion", o.gone)
}

// TestAwaitSuccessor: an agent whose pod is being deleted waits for the
// next pod of its own DaemonSet on the node (not one being deleted, not a
// look-alike) until that pod is exempt, and says what it saw when the wait
// ends first; an agent whose pod stays (its container restarted) does not
// wait.
func TestAwaitSuccessor(t *testing.T) {
	deleted := func(u map[string]any) map[string]any {
		u["metadata"].(map[string]any)["deletionTimestamp"] = "2026-12-07T10:00:00Z"
		return u
	}
	idx := syncedPodIndex(t, newFakeAPI(t), 100*time.Millisecond, func(string) {},
		deleted(ownedPod("ringfence-a", "ringfence", "self", ds("d1"))),
		ownedPod("ringfence-b", "ringfence", "next", ds("d1")),
		ownedPod("ringfence-c", "ringfence", "copy", nil),
		deleted(ownedPod("ringfence-old", "ringfence", "old", ds("d1"))))
	ctx := t.Context()
	var succ []string
	for _, p := range idx.Successors("self") {
		succ = append(succ, p.UID)
	}
	if len(succ) != 1 || succ[0] != "next" {
		t.Fatalf("Successors = %v, want [next] (not self, a look-alike, or a pod being deleted)", succ)
	}
	a := &Agent{Pods: idx}
	within := func(ctx context.Context, d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(ctx, d)
		t.Cleanup(cancel)
		return ctx
	}
	var exempt atomic.Bool
	ok, why := a.AwaitSuccessor(within(ctx, 300*time.Millisecond), "self", func(uid string) bool { return uid == "next" && exempt.Load() })
	if ok || !strings.Contains(why, "ringfence-b") {
		t.Errorf("next not exempt: %v %q, want false naming the pod", ok, why)
	}
	time.AfterFunc(200*time.Millisecond, func() { exempt.Store(true) })
	start := time.Now()
	ok, why = a.AwaitSuccessor(within(ctx, 5*time.Second), "self", func(uid string) bool { return uid == "next" && exempt.Load() })
	if !ok || time.Since(start) > 3*time.Second {
		t.Errorf("next exempt after 200 ms: %v %q after %s, want true at once", ok, why, time.Since(start))
	}
	if ok, why := a.AwaitSuccessor(within(ctx, 5*time.Second), "unknown", func(string) bool { return true }); ok || !strings.Contains(why, "not known") {
		t.Errorf("the agent's own pod unknown: %v %q, want no wait", ok, why)
	}
	// The pod that stays (next's own view: it is not being deleted): a
	// few seconds, not the whole wait.
	start = time.Now()
	if ok, why := a.AwaitSuccessor(within(ctx, 30*time.Second), "next", func(string) bool { return false }); ok || !strings.Contains(why, "not being deleted") || time.Since(start) > 6*time.Second {
		t.Errorf("the agent's pod not being deleted: %v %q after %s, want no wait", ok, why, time.Since(start))
	}
}
