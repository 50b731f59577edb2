package kube

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// recorder raises Events on objects, as the ringfence agent of a node. It
// sends them from a goroutine of its own, so that a slow API server never
// holds the caller; when maxPendingEvents are waiting, more are dropped
// and logged (they are in the agent's log and metric anyway).
type recorder struct {
	c       *client
	node    string
	log     *slog.Logger
	pending chan event
	now     func() time.Time
}

// maxPendingEvents bounds the Events waiting to be sent.
const maxPendingEvents = 64

// eventTries is how often one Event is tried.
const eventTries = 3

type event struct {
	on                   *Object
	typ, reason, message string
}

func newRecorder(c *client, node string, log *slog.Logger) *recorder {
	return &recorder{c: c, node: node, log: log, pending: make(chan event, maxPendingEvents), now: time.Now}
}

// Event raises an Event of this type (Normal, Warning) and reason on o.
func (r *recorder) Event(o *Object, typ, reason, message string) {
	select {
	case r.pending <- event{on: o, typ: typ, reason: reason, message: message}:
	default:
		r.log.Warn("kubernetes: too many Events waiting, one dropped", "object", o.key(), "reason", reason)
	}
}

// run sends the Events until ctx ends.
func (r *recorder) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-r.pending:
			r.send(ctx, e)
		}
	}
}

// send creates one Event, in the object's namespace (a cluster-scoped
// object's Events are in "default", where kubectl looks for them).
func (r *recorder) send(ctx context.Context, e event) {
	ns := e.on.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	now := r.now().UTC()
	ts := now.Format(time.RFC3339)
	body := map[string]any{
		"apiVersion": "v1",
		"kind":       "Event",
		"metadata": map[string]any{
			"name":      fmt.Sprintf("%s.%x", e.on.Metadata.Name, now.UnixNano()),
			"namespace": ns,
		},
		"involvedObject": map[string]any{
			"apiVersion":      e.on.APIVersion,
			"kind":            e.on.Kind,
			"name":            e.on.Metadata.Name,
			"namespace":       e.on.Metadata.Namespace,
			"uid":             e.on.Metadata.UID,
			"resourceVersion": e.on.Metadata.ResourceVersion,
		},
		"type":               e.typ,
		"reason":             e.reason,
		"message":            e.message,
		"source":             map[string]any{"component": "ringfence", "host": r.node},
		"reportingComponent": "ringfence",
		"reportingInstance":  r.node,
		"firstTimestamp":     ts,
		"lastTimestamp":      ts,
		"count":              1,
	}
	wait := time.Second
	for try := 1; ; try++ {
		cctx, cancel := context.WithTimeout(ctx, requestTimeout)
		err := r.c.do(cctx, http.MethodPost, eventResource.path(ns, ""), nil, body, nil)
		cancel()
		if err == nil {
			return
		}
		if try == eventTries || ctx.Err() != nil {
			r.log.Error("kubernetes: Event not recorded", "object", e.on.key(), "reason", e.reason, "error", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
}
