package kube

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/tools/cache"

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

func ownedPod(name, ns, uid string, owner *Controller) *unstructured.Unstructured {
	u := podObject(uid, map[string]string{"app.kubernetes.io/name": "ringfence"})
	u.SetName(name)
	u.SetNamespace(ns)
	if owner != nil {
		yes := true
		u.SetOwnerReferences([]metav1.OwnerReference{
			{APIVersion: "v1", Kind: "Node", Name: "node1", UID: "n1"}, // an owner, not the controller
			{APIVersion: owner.APIVersion, Kind: owner.Kind, Name: owner.Name, UID: types.UID(owner.UID), Controller: &yes},
		})
	}
	return u
}

// syncedPodIndex returns a pod index over a fake API holding pods, once
// its informer has synced, and the fake API; the informer stops when the
// test ends.
func syncedPodIndex(t *testing.T, wait time.Duration, onLabels func(uid string), pods ...runtime.Object) (*PodIndex, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{podResource: "PodList"}, pods...)
	informer := newInformer(dyn, podResource, nil)
	idx, err := newPodIndex(informer, wait, onLabels)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go informer.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		t.Fatal("the pod informer never synced")
	}
	return idx, dyn
}

// TestSibling: through the pod index (the informer's slim pods keep the
// controller reference), a container of the next agent's pod is a
// sibling, one of a pod that copies the agent's name and labels is not,
// and without the agent's own pod nothing is.
func TestSibling(t *testing.T) {
	idx, _ := syncedPodIndex(t, 100*time.Millisecond, func(string) {},
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

func dsObject(uid string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetAPIVersion("apps/v1")
	u.SetKind("DaemonSet")
	u.SetName("ringfence")
	u.SetNamespace("ringfence")
	u.SetUID(types.UID(uid))
	return u
}

// TestOwnerWatchDecides: the agent finds its DaemonSet from its own pod,
// watches it, and decides from what it sees: in place keeps the pins, a
// deletion removes them.
func TestOwnerWatchDecides(t *testing.T) {
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{podResource: "PodList", daemonSetResource: "DaemonSetList"},
		ownedPod("ringfence-a", "ringfence", "self", ds("d1")), dsObject("d1"))
	informer := newInformer(dyn, podResource, nil)
	idx, err := newPodIndex(informer, 100*time.Millisecond, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go informer.RunWithContext(ctx)
	o := &ownerWatch{dyn: dyn, pods: idx, selfUID: "self"}
	if del, why := o.decide(ctx); del {
		t.Errorf("before the agent's pod is known: uninstall (%s)", why)
	}
	go o.run(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for {
		o.mu.Lock()
		inf := o.informer
		o.mu.Unlock()
		if inf != nil && inf.HasSynced() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the DaemonSet's watch never synced")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if del, why := o.decide(ctx); del || !strings.Contains(why, "in place") {
		t.Errorf("DaemonSet in place: uninstall %v (%s)", del, why)
	}
	if err := dyn.Resource(daemonSetResource).Namespace("ringfence").Delete(ctx, "ringfence", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if del, why := o.decide(ctx); !del || !strings.Contains(why, "deleted") {
		t.Errorf("DaemonSet deleted: uninstall %v (%s)", del, why)
	}
}

// TestAwaitSuccessor: an agent whose pod is being deleted waits for the
// next pod of its own DaemonSet on the node (not one being deleted, not a
// look-alike) until that pod is exempt, and says what it saw when the wait
// ends first; an agent whose pod stays (its container restarted) does not
// wait.
func TestAwaitSuccessor(t *testing.T) {
	now := metav1.Now()
	deleted := func(u *unstructured.Unstructured) *unstructured.Unstructured { u.SetDeletionTimestamp(&now); return u }
	idx, _ := syncedPodIndex(t, 100*time.Millisecond, func(string) {},
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
