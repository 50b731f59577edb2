package container

import (
	"context"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Event topics the watcher follows.
const (
	topicTaskCreate      = "/tasks/create"
	topicTaskStart       = "/tasks/start"
	topicTaskExit        = "/tasks/exit"
	topicTaskDelete      = "/tasks/delete"
	topicContainerCreate = "/containers/create"
	topicContainerUpdate = "/containers/update"
	topicContainerDelete = "/containers/delete"
)

// eventFilters selects those topics; containerd ORs the filters.
func eventFilters() []string {
	topics := []string{
		topicTaskCreate, topicTaskStart, topicTaskExit, topicTaskDelete,
		topicContainerCreate, topicContainerUpdate, topicContainerDelete,
	}
	filters := make([]string, len(topics))
	for i, t := range topics {
		filters[i] = `topic=="` + t + `"`
	}
	return filters
}

// handle applies one event to the watcher's state.
func (w *Watcher) handle(ctx context.Context, cl *client.Client, env *events.Envelope) {
	if env == nil || env.Event == nil {
		return
	}
	v, err := typeurl.UnmarshalAny(env.Event)
	if err != nil {
		w.log.Debug("undecodable event", "topic", env.Topic, "err", err)
		return
	}
	ns := env.Namespace
	switch e := v.(type) {
	case *apievents.TaskCreate:
		// The cgroup exists from here on, and the process waits in runc
		// until the start: the earliest moment to announce it.
		w.taskUp(ctx, cl, ns, e.ContainerID, e.Pid, time.Time{})
	case *apievents.TaskStart:
		w.taskUp(ctx, cl, ns, e.ContainerID, e.Pid, env.Timestamp)
	case *apievents.TaskExit:
		// Exec'd processes exit too; only the init process ends the task.
		if e.ID == e.ContainerID {
			w.gone(ref{ns, e.ContainerID}, protoTime(e.ExitedAt), e.ExitStatus)
		}
	case *apievents.TaskDelete:
		if e.ID == "" || e.ID == e.ContainerID {
			w.gone(ref{ns, e.ContainerID}, protoTime(e.ExitedAt), e.ExitStatus)
		}
	case *apievents.ContainerUpdate:
		if cg, ok := w.live[ref{ns, e.ID}]; ok {
			w.cache.Update(cg, func(i *Info) {
				i.Image, i.Labels = e.Image, e.Labels
				i.kubernetesNames()
			})
		}
	case *apievents.ContainerDelete:
		w.gone(ref{ns, e.ID}, env.Timestamp, 0)
	case *apievents.ContainerCreate:
		// Nothing to resolve yet: a container has no cgroup until its task
		// is created.
	}
}

// taskUp handles a task's create or start: it announces a container not yet
// known, and completes a known one with its start time.
func (w *Watcher) taskUp(ctx context.Context, cl *client.Client, ns, id string, pid uint32, started time.Time) {
	r := ref{ns, id}
	if cg, ok := w.live[r]; ok {
		if !started.IsZero() {
			w.cache.Update(cg, func(i *Info) { i.Started = started })
		}
		return
	}
	nctx, cancel := context.WithTimeout(namespaces.WithNamespace(ctx, ns), callTimeout)
	defer cancel()
	c, err := cl.ContainerService().Get(nctx, id)
	if err != nil {
		w.log.Warn("container not resolved", "namespace", ns, "id", id, "err", err)
		return
	}
	info, err := w.describe(nctx, cl, ns, c, pid)
	if err != nil {
		w.log.Warn("container not resolved", "namespace", ns, "id", id, "err", err)
		return
	}
	info.Started = started
	w.announce(info)
}

// protoTime converts ts, leaving an absent one zero rather than 1970.
func protoTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
