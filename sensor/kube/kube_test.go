package kube

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/container"
)

// policyDoc is a RuntimePolicy as the API server serves it.
func policyDoc(name string, spec map[string]any) map[string]any {
	u := map[string]any{
		"apiVersion": "ringfence.dev/v1alpha1", "kind": "RuntimePolicy",
		"metadata": map[string]any{"name": name, "uid": "uid-" + name,
			"labels": map[string]any{"team": "a"}, "generation": int64(3)},
	}
	if spec != nil {
		u["spec"] = spec
	}
	return u
}

// policyObject is a RuntimePolicy as the agent reads it.
func policyObject(t *testing.T, name string, spec map[string]any) *Object {
	t.Helper()
	data, err := json.Marshal(policyDoc(name, spec))
	if err != nil {
		t.Fatal(err)
	}
	o := new(Object)
	if err := json.Unmarshal(data, o); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestConvert reads objects as the parser reads files: what the API server
// adds to metadata is ignored, problems carry the object and field path,
// and JSON's numbers and nulls mean what YAML's do.
func TestConvert(t *testing.T) {
	tests := []struct {
		name string
		spec map[string]any
		path string // "" when valid
	}{
		{"valid", map[string]any{"mode": "enforce", "bindInterfaces": map[string]any{"interfaces": []any{"eth0"}, "ports": []any{int64(8080), "9000-9100"}}}, ""},
		{"no-spec", nil, "spec"},
		{"bad-port", map[string]any{"mode": "audit", "bindInterfaces": map[string]any{"interfaces": []any{"eth0"}, "ports": []any{int64(0)}}}, "spec.bindInterfaces.ports[0]"},
		{"no-rule", map[string]any{"mode": "audit"}, "spec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, problems := Convert(policyObject(t, tt.name, tt.spec))
			if tt.path == "" {
				if len(problems) > 0 {
					t.Fatalf("problems: %v", problems)
				}
				if p.Name != tt.name || p.Source.File != "runtimepolicy/"+tt.name {
					t.Errorf("got name %q source %q", p.Name, p.Source.File)
				}
				if got := p.Spec.BindInterfaces.Ports; len(got) != 2 || got[0].From != 8080 {
					t.Errorf("ports %v", got)
				}
				return
			}
			if len(problems) == 0 || problems[0].Path != tt.path || problems[0].File != "runtimepolicy/"+tt.name {
				t.Fatalf("want a problem of runtimepolicy/%s at %s, got %v", tt.name, tt.path, problems)
			}
		})
	}
}

// fakeApplier records what the watcher hands over, and refuses when told.
type fakeApplier struct {
	got chan []enforce.RuntimePolicy

	mu     sync.Mutex
	refuse error
}

func (f *fakeApplier) SetPolicies(source string, pols []enforce.RuntimePolicy, _ []string, problems enforce.Problems) error {
	f.got <- pols
	if len(problems) > 0 {
		return problems
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refuse
}

// TestPolicyWatcher applies the objects, keeps a refused set out, raises
// one Event per refused object version, on the object with the problem or,
// when the set as a whole is refused, on the one that changed: Events as
// the API server receives them, in "default" for these cluster-scoped
// objects.
func TestPolicyWatcher(t *testing.T) {
	ok := map[string]any{"mode": "audit", "denyPrivileged": true}
	bad := map[string]any{"mode": "audit"}
	api := newFakeAPI(t)
	api.put(PolicyResource.Plural, policyDoc("a", ok))
	c := api.client()
	informer := newInformer(c, PolicyResource, "", "", quiet())
	apply := &fakeApplier{got: make(chan []enforce.RuntimePolicy, 10)}
	rec := newRecorder(c, "node1", quiet())
	w := newPolicyWatcher(informer, apply, rec, "node1", quiet())
	ctx := t.Context()
	go rec.run(ctx)
	go informer.run(ctx)
	go w.Run(ctx)

	if pols := next(t, apply.got); len(pols) != 1 || pols[0].Name != "a" {
		t.Fatalf("first set: %v", pols)
	}
	api.put(PolicyResource.Plural, policyDoc("b", bad))
	next(t, apply.got)
	ev := recv(t, api.events, "event")
	md, _ := ev["metadata"].(map[string]any)
	obj, _ := ev["involvedObject"].(map[string]any)
	src, _ := ev["source"].(map[string]any)
	msg, _ := ev["message"].(string)
	if ev["reason"] != ReasonRefused || ev["type"] != "Warning" || !strings.Contains(msg, "spec: no rule") || !strings.Contains(msg, "node1") ||
		md["namespace"] != "default" || obj["kind"] != "RuntimePolicy" || obj["name"] != "b" || obj["uid"] != "uid-b" ||
		obj["apiVersion"] != "ringfence.dev/v1alpha1" || src["host"] != "node1" || src["component"] != "ringfence" {
		t.Errorf("event %v", ev)
	}
	if n := testutil.ToFloat64(w.refused); n != 1 {
		t.Errorf("refused counter %v, want 1", n)
	}
	api.del(PolicyResource.Plural, "b")
	next(t, apply.got)

	apply.mu.Lock()
	apply.refuse = errors.New("selected by 9 policies, at most 8")
	apply.mu.Unlock()
	api.put(PolicyResource.Plural, policyDoc("c", ok))
	next(t, apply.got)
	ev = recv(t, api.events, "event")
	if msg, _ := ev["message"].(string); !strings.Contains(msg, "at most 8") || ev["involvedObject"].(map[string]any)["name"] != "c" {
		t.Errorf("event %v, want the engine's refusal on c", ev)
	}
	select {
	case ev := <-api.events:
		t.Errorf("a second event %v: only the changed object is blamed", ev)
	case <-time.After(100 * time.Millisecond):
	}
	if !w.Synced() {
		t.Error("not synced after applying")
	}
}

// recv takes one value from ch, failing the test when none comes in 5 s.
func recv[T any](t *testing.T, ch chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s", what)
		var zero T
		return zero
	}
}

func next(t *testing.T, ch chan []enforce.RuntimePolicy) []enforce.RuntimePolicy {
	t.Helper()
	return recv(t, ch, "policy set handed over")
}

// podObject is a pod of node1 as the API server serves it.
func podObject(uid string, labels map[string]string) map[string]any {
	ls := map[string]any{}
	for k, v := range labels {
		ls[k] = v
	}
	return map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "web", "namespace": "prod", "uid": uid, "labels": ls},
		"spec":     map[string]any{"nodeName": "node1", "containers": []any{}}}
}

// TestPodLabels gives a container its pod's labels over its runtime ones,
// waits a bounded time for a pod the index does not have yet, and reports
// a label change.
func TestPodLabels(t *testing.T) {
	changed := make(chan string, 10)
	api := newFakeAPI(t)
	idx := syncedPodIndex(t, api, 300*time.Millisecond, func(uid string) { changed <- uid }, podObject("u1", map[string]string{"app": "web"}))

	info := container.Info{Labels: map[string]string{container.LabelPodUID: "u1", "io.kubernetes.container.name": "main"}}
	got := idx.Labels(info)
	if got["app"] != "web" || got["io.kubernetes.container.name"] != "main" {
		t.Errorf("labels %v", got)
	}
	if p, ok := idx.Lookup("u1"); !ok || p.Name != "web" || p.Namespace != "prod" {
		t.Errorf("lookup: %+v %v", p, ok)
	}
	start := time.Now()
	if got := idx.Labels(container.Info{Labels: map[string]string{container.LabelPodUID: "unknown"}}); got["app"] != "" {
		t.Errorf("unknown pod got %v", got)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Errorf("waited %s for an unknown pod, want about 300ms", d)
	}
	if got := idx.Labels(container.Info{Labels: map[string]string{"x": "y"}}); got["x"] != "y" {
		t.Errorf("a container outside a pod: %v", got)
	}
	recv(t, changed, "report of the pod's arrival")
	api.put("pods", podObject("u1", map[string]string{"app": "api"}))
	if uid := recv(t, changed, "report of the label change"); uid != "u1" {
		t.Errorf("changed %q", uid)
	}
}
