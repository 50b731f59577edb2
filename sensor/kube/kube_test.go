package kube

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/tools/record"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/container"
)

func policyObject(name, resourceVersion string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "ringfence.dev/v1alpha1", "kind": "RuntimePolicy",
		"metadata": map[string]any{"name": name, "resourceVersion": resourceVersion, "uid": "uid-" + name,
			"labels": map[string]any{"team": "a"}, "generation": int64(3)},
	}}
	if spec != nil {
		u.Object["spec"] = spec
	}
	return u
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
			p, problems := Convert(policyObject(tt.name, "1", tt.spec))
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
	got    chan []enforce.RuntimePolicy
	refuse error
}

func (f *fakeApplier) SetPolicies(source string, pols []enforce.RuntimePolicy, _ []string, problems enforce.Problems) error {
	f.got <- pols
	if len(problems) > 0 {
		return problems
	}
	return f.refuse
}

// TestPolicyWatcher applies the objects, keeps a refused set out, raises
// one Event per refused object version, on the object with the problem or,
// when the set as a whole is refused, on the one that changed.
func TestPolicyWatcher(t *testing.T) {
	ok := map[string]any{"mode": "audit", "denyPrivileged": true}
	bad := map[string]any{"mode": "audit"}
	scheme := runtime.NewScheme()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme,
		map[schema.GroupVersionResource]string{PolicyResource: "RuntimePolicyList"}, policyObject("a", "1", ok))
	informer := newInformer(dyn, PolicyResource, nil)
	apply := &fakeApplier{got: make(chan []enforce.RuntimePolicy, 10)}
	rec := record.NewFakeRecorder(10)
	w, err := newPolicyWatcher(informer, apply, rec, "node1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go informer.RunWithContext(ctx)
	go w.Run(ctx)

	if pols := next(t, apply.got); len(pols) != 1 || pols[0].Name != "a" {
		t.Fatalf("first set: %v", pols)
	}
	res := dyn.Resource(PolicyResource)
	if _, err := res.Create(ctx, policyObject("b", "2", bad), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	next(t, apply.got)
	if ev := event(t, rec.Events); !strings.Contains(ev, ReasonRefused) || !strings.Contains(ev, "spec: no rule") || !strings.Contains(ev, "node1") {
		t.Errorf("event %q", ev)
	}
	if n := testutil.ToFloat64(w.refused); n != 1 {
		t.Errorf("refused counter %v, want 1", n)
	}
	if err := res.Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	next(t, apply.got)

	apply.refuse = errors.New("selected by 9 policies, at most 8")
	if _, err := res.Create(ctx, policyObject("c", "3", ok), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	next(t, apply.got)
	if ev := event(t, rec.Events); !strings.Contains(ev, "at most 8") {
		t.Errorf("event %q, want the engine's refusal", ev)
	}
	select {
	case ev := <-rec.Events:
		t.Errorf("a second event %q: only the changed object is blamed", ev)
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

func event(t *testing.T, ch chan string) string {
	t.Helper()
	return recv(t, ch, "event")
}

// podObject is a pod as the dynamic client gives it.
func podObject(uid string, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"nodeName": "node1", "containers": []any{}}}}
	u.SetAPIVersion("v1")
	u.SetKind("Pod")
	u.SetName("web")
	u.SetNamespace("prod")
	u.SetUID(types.UID(uid))
	u.SetLabels(labels)
	return u
}

// TestPodLabels gives a container its pod's labels over its runtime ones,
// waits a bounded time for a pod the index does not have yet, and reports
// a label change.
func TestPodLabels(t *testing.T) {
	changed := make(chan string, 10)
	idx, dyn := syncedPodIndex(t, 300*time.Millisecond, func(uid string) { changed <- uid }, podObject("u1", map[string]string{"app": "web"}))
	ctx := t.Context()

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
	if _, err := dyn.Resource(podResource).Namespace("prod").Update(ctx, podObject("u1", map[string]string{"app": "api"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if uid := recv(t, changed, "report of the label change"); uid != "u1" {
		t.Errorf("changed %q", uid)
	}
}
