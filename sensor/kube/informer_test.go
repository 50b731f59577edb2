package kube

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// changeLog records what an informer's handler is told, as "add x",
// "update x", "delete x".
type changeLog struct {
	mu  sync.Mutex
	got []string
}

func (l *changeLog) handler() handler {
	rec := func(what string, o *Object) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.got = append(l.got, what+" "+o.Metadata.Name)
	}
	return handler{
		add:    func(o *Object) { rec("add", o) },
		update: func(_, cur *Object) { rec("update", cur) },
		del:    func(o *Object) { rec("delete", o) },
	}
}

func (l *changeLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.got
	l.got = nil
	slices.Sort(out)
	return out
}

func (l *changeLog) await(t *testing.T, want ...string) {
	t.Helper()
	slices.Sort(want)
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		got = append(got, l.take()...)
		slices.Sort(got)
		if slices.Equal(got, want) {
			return
		}
		if len(got) > len(want) || time.Now().After(deadline) {
			t.Fatalf("told %q, want %q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// followed starts an informer of res on the fake API, with a change log,
// once it has listed; it stops when the test ends.
func followed(t *testing.T, api *fakeAPI, res Resource) (*informer, *changeLog) {
	t.Helper()
	inf := newInformer(api.client(), res, "", "", quiet())
	log := new(changeLog)
	inf.addHandler(log.handler())
	go inf.run(t.Context())
	waitFor(t, "the first list", inf.hasSynced)
	return inf, log
}

func named(name string, labels map[string]any) map[string]any {
	return map[string]any{"apiVersion": "ringfence.dev/v1alpha1", "kind": "RuntimePolicy",
		"metadata": map[string]any{"name": name, "uid": "uid-" + name, "labels": labels}}
}

// TestInformerFollowsTheAPI: the store is what the API server holds
// through a watch's additions, changes and deletions; a watch the server
// ends is taken up again without a list; a version the server forgot
// (410 Gone) is listed again, and what changed meanwhile, deletions
// included, is told; a failing server is retried.
func TestInformerFollowsTheAPI(t *testing.T) {
	api := newFakeAPI(t)
	api.watchFor = 1200 * time.Millisecond // the server ends watches often (not at once)
	api.put("runtimepolicies", named("a", nil))
	api.put("runtimepolicies", named("b", nil))
	inf, log := followed(t, api, PolicyResource)
	log.await(t, "add a", "add b")

	api.put("runtimepolicies", named("c", nil))
	api.put("runtimepolicies", named("a", map[string]any{"x": "1"}))
	api.del("runtimepolicies", "b")
	log.await(t, "add c", "update a", "delete b")
	time.Sleep(1500 * time.Millisecond) // a watch ends and is taken up again
	api.put("runtimepolicies", named("d", nil))
	log.await(t, "add d")
	if n := api.listCount("runtimepolicies"); n != 1 {
		t.Errorf("%d lists, want 1: a watch that ends is taken up from its version", n)
	}

	// The server forgets the versions; meanwhile d goes and e comes.
	lists := len(api.listVersions())
	api.failing("runtimepolicies", 500)
	api.forget()
	api.del("runtimepolicies", "d")
	api.put("runtimepolicies", named("e", nil))
	waitFor(t, "a list refused", func() bool { return len(api.listVersions()) > lists })
	api.failing("runtimepolicies", 0)
	log.await(t, "delete d", "add e")
	// The first list from the API server's cache; after a failed list,
	// from its storage.
	vs := api.listVersions()
	if len(vs) < 3 || vs[0] != "0/" || vs[len(vs)-1] != "/" {
		t.Errorf("lists asked %q, want 0/ first and / after a failure", vs)
	}
	var names []string
	for _, o := range inf.list() {
		names = append(names, o.Metadata.Name)
	}
	slices.Sort(names)
	if want := []string{"a", "c", "e"}; !slices.Equal(names, want) {
		t.Errorf("store %v, want %v", names, want)
	}
	if o, ok := inf.get("a"); !ok || o.Metadata.Labels["x"] != "1" || o.Kind != "RuntimePolicy" {
		t.Errorf("a: %+v", o)
	}
	if o, ok := inf.getByUID("uid-e"); !ok || o.Metadata.Name != "e" {
		t.Errorf("by uid: %+v %v", o, ok)
	}
	if _, ok := inf.getByUID("uid-d"); ok {
		t.Error("a deleted object is still found by its uid")
	}
}

// TestInformerListGivesKinds: a typed list leaves its items' kind and
// apiVersion out; the informer gives them from the list.
func TestInformerListGivesKinds(t *testing.T) {
	api := newFakeAPI(t)
	api.put("pods", podObject("u1", nil))
	inf, _ := followed(t, api, podResource)
	o, ok := inf.getByUID("u1")
	if !ok || o.APIVersion != "v1" || o.Kind != "Pod" {
		t.Fatalf("pod %+v", o)
	}
}

// TestAPIErrorNamesTheRequest: an error answer is an error naming the
// request, its status and the server's message.
func TestAPIErrorNamesTheRequest(t *testing.T) {
	api := newFakeAPI(t)
	_, err := api.client().get(t.Context(), daemonSetResource, "ns1", "missing")
	if !isStatus(err, 404) {
		t.Fatalf("err %v, want a 404", err)
	}
	want := fmt.Sprintf("GET /apis/apps/v1/namespaces/ns1/daemonsets/missing: 404 NotFound: daemonsets %q not found", "missing")
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// TestInformerObjectMadeAgain: an object deleted and made again under its
// name while the watch was away is told as a deletion and an addition, so
// a handler keyed by uid hears of the new one.
func TestInformerObjectMadeAgain(t *testing.T) {
	api := newFakeAPI(t)
	api.put("pods", podObject("u1", map[string]string{"app": "web"}))
	inf, log := followed(t, api, podResource)
	log.await(t, "add web")
	api.failing("pods", 500)
	api.forget()
	api.del("pods", "prod/web")
	api.put("pods", podObject("u2", map[string]string{"app": "web"}))
	api.failing("pods", 0)
	log.await(t, "delete web", "add web")
	if _, ok := inf.getByUID("u1"); ok {
		t.Error("the deleted pod is still found by its uid")
	}
	if o, ok := inf.getByUID("u2"); !ok || o.Metadata.Name != "web" {
		t.Errorf("the new pod by its uid: %+v %v", o, ok)
	}
}

// TestInformerRelistsFromCache: a watch that had lasted when its version
// is gone is followed by a list from the API server's cache not older than
// the last version seen.
func TestInformerRelistsFromCache(t *testing.T) {
	api := newFakeAPI(t)
	api.put("runtimepolicies", named("a", nil))
	_, log := followed(t, api, PolicyResource)
	log.await(t, "add a")
	api.put("runtimepolicies", named("b", nil))
	log.await(t, "add b")
	time.Sleep(1200 * time.Millisecond) // the watch has lasted
	api.forget()
	waitFor(t, "a second list", func() bool { return len(api.listVersions()) == 2 })
	if vs := api.listVersions(); vs[0] != "0/" || vs[1] != "2/NotOlderThan" {
		t.Errorf("lists asked %q, want 0/ then 2/NotOlderThan (b's version)", vs)
	}
}
