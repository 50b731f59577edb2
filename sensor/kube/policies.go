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
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringfence/ringfence/enforce"
)

// PolicyResource is the RuntimePolicy objects' resource.
var PolicyResource = Resource{Group: "ringfence.dev", Version: "v1alpha1", Plural: "runtimepolicies"}

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
	informer *informer
	apply    Applier
	recorder eventRecorder
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

// eventRecorder raises Events on objects (recorder).
type eventRecorder interface {
	Event(o *Object, typ, reason, message string)
}

// newPolicyWatcher returns a watcher of the objects informer lists.
func newPolicyWatcher(informer *informer, apply Applier, recorder eventRecorder, node string, log *slog.Logger) *PolicyWatcher {
	w := &PolicyWatcher{informer: informer, apply: apply, recorder: recorder, node: node, log: log,
		kick: make(chan struct{}, 1), accepted: map[string]string{}, reported: map[string]string{},
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringfence_policy_objects_refused_total",
			Help: "RuntimePolicy objects (one per version) the API server accepted and the agent refused; the set in force stayed.",
		})}
	informer.addHandler(handler{
		add:    func(*Object) { w.changed() },
		update: func(_, _ *Object) { w.changed() },
		del:    func(*Object) { w.changed() },
	})
	return w
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
	for !w.informer.hasSynced() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
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
func (w *PolicyWatcher) objects() []*Object {
	out := w.informer.list()
	slices.SortFunc(out, func(a, b *Object) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	return out
}

// refuse reports a refused set on the objects it blames: those with
// problems of their own, else (the set as a whole was refused) those that
// changed since the last accepted set.
func (w *PolicyWatcher) refuse(objs []*Object, problems enforce.Problems, err error) {
	byObject := map[string][]string{}
	for _, p := range problems {
		byObject[p.File] = append(byObject[p.File], problemText(p))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range objs {
		name, version := o.Metadata.Name, o.Metadata.ResourceVersion
		msgs := byObject[Origin(name)]
		if len(problems) == 0 && w.accepted[name] != version {
			msgs = []string{err.Error()}
		}
		if len(msgs) == 0 || w.reported[name] == version {
			continue
		}
		w.reported[name] = version
		msg := fmt.Sprintf("not applied on node %s, the policy set in force stays: %s", w.node, strings.Join(msgs, "; "))
		w.recorder.Event(o, "Warning", ReasonRefused, msg)
		w.refused.Inc()
		w.log.Error("RuntimePolicy refused", "object", name, "resourceVersion", version, "problems", msgs)
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

func versions(objs []*Object) map[string]string {
	out := make(map[string]string, len(objs))
	for _, o := range objs {
		out[o.Metadata.Name] = o.Metadata.ResourceVersion
	}
	return out
}

// Origin is how an object is named in policy sources and problems.
func Origin(name string) string { return "runtimepolicy/" + name }

// Convert reads an object with the policy file parser, so that an object
// means exactly what the same document in a file means: its apiVersion,
// kind, name and spec, without what the API server adds to metadata.
func Convert(o *Object) (enforce.RuntimePolicy, enforce.Problems) {
	doc := map[string]any{
		"apiVersion": o.APIVersion,
		"kind":       o.Kind,
		"metadata":   map[string]any{"name": o.Metadata.Name},
	}
	if o.Spec != nil {
		doc["spec"] = o.Spec
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return enforce.RuntimePolicy{}, enforce.Problems{{File: Origin(o.Metadata.Name), Message: err.Error()}}
	}
	pols, problems := enforce.Parse(Origin(o.Metadata.Name), data)
	if len(problems) > 0 {
		return enforce.RuntimePolicy{}, problems
	}
	return pols[0], nil
}
