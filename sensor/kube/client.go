package kube

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// The agent speaks to the API server through the dynamic client only: the
// typed clientset and informer factories would link every API group of
// Kubernetes into the sensor (its binary grows threefold), for three
// resources.

var (
	podResource   = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	eventResource = schema.GroupVersionResource{Version: "v1", Resource: "events"}
)

// newInformer returns an informer on one resource, every namespace, with
// tweak (may be nil) applied to each list and watch.
func newInformer(dyn dynamic.Interface, gvr schema.GroupVersionResource, tweak func(*metav1.ListOptions)) cache.SharedIndexInformer {
	return newNamespacedInformer(dyn.Resource(gvr), dyn, tweak)
}

// newNamespacedInformer is newInformer over res, a resource of every
// namespace or of one (dyn.Resource(gvr).Namespace(ns)).
func newNamespacedInformer(res dynamic.ResourceInterface, dyn dynamic.Interface, tweak func(*metav1.ListOptions)) cache.SharedIndexInformer {
	opts := func(o metav1.ListOptions) metav1.ListOptions {
		if tweak != nil {
			tweak(&o)
		}
		return o
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return res.List(ctx, opts(o))
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return res.Watch(ctx, opts(o))
		},
	}
	// The client says whether it can stream the initial list in a watch
	// (the API server's can, a test's fake cannot).
	return cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, dyn), &unstructured.Unstructured{}, 0, cache.Indexers{})
}

// eventSink writes the recorder's Events with the dynamic client.
type eventSink struct {
	dyn dynamic.Interface
}

// sinkTimeout bounds one write of an Event.
const sinkTimeout = 10 * time.Second

func (s eventSink) Create(e *corev1.Event) (*corev1.Event, error) {
	return s.write(e, func(ctx context.Context, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
		return s.dyn.Resource(eventResource).Namespace(e.Namespace).Create(ctx, u, metav1.CreateOptions{})
	})
}

func (s eventSink) Update(e *corev1.Event) (*corev1.Event, error) {
	return s.write(e, func(ctx context.Context, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
		return s.dyn.Resource(eventResource).Namespace(e.Namespace).Update(ctx, u, metav1.UpdateOptions{})
	})
}

func (s eventSink) Patch(e *corev1.Event, data []byte) (*corev1.Event, error) {
	return s.write(e, func(ctx context.Context, _ *unstructured.Unstructured) (*unstructured.Unstructured, error) {
		return s.dyn.Resource(eventResource).Namespace(e.Namespace).Patch(ctx, e.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{})
	})
}

// write converts e for the dynamic client, calls it, and converts back.
func (s eventSink) write(e *corev1.Event, call func(context.Context, *unstructured.Unstructured) (*unstructured.Unstructured, error)) (*corev1.Event, error) {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(e)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: obj}
	u.SetAPIVersion("v1")
	u.SetKind("Event")
	ctx, cancel := context.WithTimeout(context.Background(), sinkTimeout)
	defer cancel()
	got, err := call(ctx, u)
	if err != nil {
		return nil, err
	}
	out := &corev1.Event{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(got.Object, out); err != nil {
		return nil, fmt.Errorf("event from the API server: %w", err)
	}
	return out, nil
}

// eventRecorder records Events as the ringfence agent of node, until ctx
// ends. The objects it records on carry their kind, so its scheme needs
// no types.
func eventRecorder(ctx context.Context, dyn dynamic.Interface, node string) record.EventRecorder {
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartRecordingToSink(eventSink{dyn})
	context.AfterFunc(ctx, b.Shutdown)
	return b.NewRecorder(runtime.NewScheme(), corev1.EventSource{Component: "ringfence", Host: node})
}
