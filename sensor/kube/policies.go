package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/ringfence/ringfence/enforce"
)

// PolicyResource is the RuntimePolicy objects' resource.
var PolicyResource = schema.GroupVersionResource{Group: "ringfence.dev", Version: "v1alpha1", Resource: "runtimepolicies"}

// SourceName names the objects' policies in the sensor's policy set.
const SourceName = "kubernetes"

// ReasonRefused is the reason of the Event raised on a refused object.
const ReasonRefused = "PolicyRefused"

// Applier makes a source's policies part of the set in force, or refuses
// them and keeps the set in force (sensor.Sensor.SetPolicies).
type Applier interface {
	SetPolicies(source string, pols []enforce.RuntimePolicy, origins []string, problems enforce.Problems) error
}

// PolicyWatcher applies the RuntimePolicy objects, all of them as one
// source, each time one changes.
type PolicyWatcher struct {
	informer cache.SharedIndexInformer
	apply    Applier
	recorder record.EventRecorder
	node     string
	log      *slog.Logger
	refused  prometheus.Counter
	kick     chan struct{}
	synced   atomic.Bool

	mu sync.Mutex
	// accepted is each object's resourceVersion in the last accepted set;
	// reported, the version of each object last reported as refused, so
	// that one refusal raises one Event, not one per resync.
	accepted, reported map[string]string
}

// newPolicyWatcher returns a watcher of the objects informer lists.
func newPolicyWatcher(informer cache.SharedIndexInformer, apply Applier, recorder record.EventRecorder, node string, log *slog.Logger) (*PolicyWatcher, error) {
	w := &PolicyWatcher{informer: informer, apply: apply, recorder: recorder, node: node, log: log,
		kick: make(chan struct{}, 1), accepted: map[string]string{}, reported: map[string]string{},
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringfence_policy_objects_refused_total",
			Help: "RuntimePolicy objects (one per version) the API server accepted and the agent refused; the set in force stayed.",
		})}
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.changed() },
		UpdateFunc: func(any, any) { w.changed() },
		DeleteFunc: func(any) { w.changed() },
	})
	return w, err
}

// changed asks for one more pass; passes asked for while one runs fold
// into one.
func (w *PolicyWatcher) changed() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Synced reports whether the objects as first listed have been applied (or
// refused, the set in force staying).
func (w *PolicyWatcher) Synced() bool { return w.synced.Load() }

// Run applies the objects once the informer has listed them, then again
// after every change, until ctx ends.
func (w *PolicyWatcher) Run(ctx context.Context) {
	if !cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced) {
		return
	}
	w.changed()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
			w.sync()
			w.synced.Store(true)
		}
	}
}

// sync reads every object and hands the set to the applier.
func (w *PolicyWatcher) sync() {
	objs := w.objects()
	var (
		pols     []enforce.RuntimePolicy
		origins  []string
		problems enforce.Problems
	)
	for _, o := range objs {
		p, probs := Convert(o)
		problems = append(problems, probs...)
		if len(probs) == 0 {
			pols = append(pols, p)
			origins = append(origins, p.Source.File)
		}
	}
	err := w.apply.SetPolicies(SourceName, pols, origins, problems)
	if err == nil {
		w.mu.Lock()
		w.accepted = versions(objs)
		w.reported = map[string]string{} // what was refused is gone or fixed
		w.mu.Unlock()
		w.log.Info("RuntimePolicy objects applied", "objects", len(objs))
		return
	}
	w.refuse(objs, problems, err)
}

// objects are the informer's objects, by name.
func (w *PolicyWatcher) objects() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range w.informer.GetStore().List() {
		if u, ok := o.(*unstructured.Unstructured); ok {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b *unstructured.Unstructured) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// refuse reports a refused set on the objects it blames: those with
// problems of their own, else (the set as a whole was refused) those that
// changed since the last accepted set.
func (w *PolicyWatcher) refuse(objs []*unstructured.Unstructured, problems enforce.Problems, err error) {
	byObject := map[string][]string{}
	for _, p := range problems {
		byObject[p.File] = append(byObject[p.File], problemText(p))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range objs {
		msgs := byObject[Origin(o.GetName())]
		if len(problems) == 0 && w.accepted[o.GetName()] != o.GetResourceVersion() {
			msgs = []string{err.Error()}
		}
		if len(msgs) == 0 || w.reported[o.GetName()] == o.GetResourceVersion() {
			continue
		}
		w.reported[o.GetName()] = o.GetResourceVersion()
		msg := fmt.Sprintf("not applied on node %s, the policy set in force stays: %s", w.node, strings.Join(msgs, "; "))
		w.recorder.Event(o, "Warning", ReasonRefused, msg)
		w.refused.Inc()
		w.log.Error("RuntimePolicy refused", "object", o.GetName(), "resourceVersion", o.GetResourceVersion(), "problems", msgs)
	}
}

// problemText is a problem without the line of the document made from
// the object, which no one wrote.
func problemText(p enforce.Problem) string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

func versions(objs []*unstructured.Unstructured) map[string]string {
	out := make(map[string]string, len(objs))
	for _, o := range objs {
		out[o.GetName()] = o.GetResourceVersion()
	}
	return out
}

// Origin is how an object is named in policy sources and problems.
func Origin(name string) string { return "runtimepolicy/" + name }

// Convert reads an object with the policy file parser, so that an object
// means exactly what the same document in a file means: its apiVersion,
// kind, name and spec, without what the API server adds to metadata.
func Convert(o *unstructured.Unstructured) (enforce.RuntimePolicy, enforce.Problems) {
	doc := map[string]any{
		"apiVersion": o.GetAPIVersion(),
		"kind":       o.GetKind(),
		"metadata":   map[string]any{"name": o.GetName()},
	}
	if spec, ok := o.Object["spec"]; ok {
		doc["spec"] = spec
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return enforce.RuntimePolicy{}, enforce.Problems{{File: Origin(o.GetName()), Message: err.Error()}}
	}
	pols, problems := enforce.Parse(Origin(o.GetName()), data)
	if len(problems) > 0 {
		return enforce.RuntimePolicy{}, problems
	}
	return pols[0], nil
}
