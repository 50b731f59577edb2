package container

import (
	"context"
	"fmt"
	"path"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ringfence/ringfence/sensor/hostfs"
)

// sync lists the tasks and containers of every namespace, announces the
// running containers the watcher did not know and retires the known ones
// that are no longer there.
func (w *Watcher) sync(ctx context.Context, cl *client.Client) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	nss, err := cl.NamespaceService().List(cctx)
	if err != nil {
		return fmt.Errorf("listing namespaces: %w", err)
	}
	seen := map[ref]bool{}
	for _, ns := range nss {
		if err := w.syncNamespace(ctx, cl, ns, seen); err != nil {
			return err
		}
	}
	for r := range w.live {
		if !seen[r] {
			w.gone(r, time.Time{}, 0)
		}
	}
	w.setLive(true)
	return nil
}

func (w *Watcher) syncNamespace(ctx context.Context, cl *client.Client, ns string, seen map[ref]bool) error {
	nctx, cancel := context.WithTimeout(namespaces.WithNamespace(ctx, ns), callTimeout)
	defer cancel()
	resp, err := cl.TaskService().List(nctx, &tasksapi.ListTasksRequest{})
	if err != nil {
		return fmt.Errorf("listing tasks in %s: %w", ns, err)
	}
	if len(resp.Tasks) == 0 {
		return nil
	}
	ctrs, err := cl.ContainerService().List(nctx)
	if err != nil {
		return fmt.Errorf("listing containers in %s: %w", ns, err)
	}
	byID := make(map[string]containers.Container, len(ctrs))
	for _, c := range ctrs {
		byID[c.ID] = c
	}
	for _, t := range resp.Tasks {
		c, ok := byID[t.ID]
		// A stopped task's cgroup is gone or going: not seen, so retired.
		if !ok || t.Pid == 0 || t.Status == task.Status_STOPPED || t.Status == task.Status_UNKNOWN {
			continue
		}
		r := ref{ns, t.ID}
		seen[r] = true
		if cg, known := w.live[r]; known {
			if info, ok := w.cache.Lookup(cg); ok && info.Pid == t.Pid {
				continue
			}
			// A new task for the same container while we were away: the old
			// cgroup went with the old task.
			w.gone(r, time.Time{}, 0)
		}
		info, err := w.describe(nctx, cl, ns, c, t.Pid)
		if err != nil {
			w.log.Warn("container not resolved", "namespace", ns, "id", t.ID, "err", err)
			delete(seen, r)
			continue
		}
		if t.Status != task.Status_CREATED {
			// Only a sync finds a task already running; its process start
			// is the closest to when the task started.
			info.Started, _ = hostfs.ProcessStart(w.cfg.ProcRoot, t.Pid)
		}
		w.announce(info)
	}
	return nil
}

// describe builds the Info of container c in namespace ns whose init process
// is pid. It fails when the container's cgroup cannot be found: without a
// cgroup id the entry could never be looked up.
func (w *Watcher) describe(ctx context.Context, cl *client.Client, ns string, c containers.Container, pid uint32) (Info, error) {
	info := Info{
		ID:               c.ID,
		RuntimeNamespace: ns,
		Runtime:          RuntimeContainerd,
		Image:            c.Image,
		Labels:           c.Labels,
		Pid:              pid,
		Created:          c.CreatedAt,
	}
	if c.Spec != nil {
		v, err := typeurl.UnmarshalAny(c.Spec)
		if err != nil {
			return Info{}, fmt.Errorf("container %s spec: %w", c.ID, err)
		}
		info.Spec, _ = v.(*specs.Spec)
	}
	if c.Image != "" {
		img, err := cl.ImageService().Get(ctx, c.Image)
		switch {
		case err == nil:
			info.ImageDigest = img.Target.Digest.String()
		case !errdefs.IsNotFound(err):
			// The digest is a nicety; the container resolves without it.
			w.log.Debug("image not resolved", "namespace", ns, "image", c.Image, "err", err)
		}
	}
	cg, err := w.cgroupOf(pid, info.Spec)
	if err != nil {
		return Info{}, fmt.Errorf("container %s: %w", c.ID, err)
	}
	info.CgroupPath = cg
	if info.CgroupID, err = hostfs.CgroupID(w.cfg.Cgroup2, cg); err != nil {
		return Info{}, fmt.Errorf("container %s: %w", c.ID, err)
	}
	info.kubernetesNames()
	return info, nil
}

// cgroupOf returns the cgroup v2 path of the container whose init is pid.
// The process tells best; the spec's path serves when the process has
// already gone and the runtime used a plain (cgroupfs) path.
func (w *Watcher) cgroupOf(pid uint32, spec *specs.Spec) (string, error) {
	cg, err := hostfs.CgroupOfPid(w.cfg.ProcRoot, pid)
	if err == nil {
		return cg, nil
	}
	if spec != nil && spec.Linux != nil && path.IsAbs(spec.Linux.CgroupsPath) {
		return spec.Linux.CgroupsPath, nil
	}
	return "", fmt.Errorf("cgroup of pid %d: %w", pid, err)
}

// announce records a container the watcher did not know and tells OnStart.
func (w *Watcher) announce(info Info) {
	w.cache.Put(info)
	w.live[ref{info.RuntimeNamespace, info.ID}] = info.CgroupID
	w.setLive(false)
	if w.cfg.OnStart != nil {
		w.cfg.OnStart(info)
	}
}

// gone retires a known container and tells OnGone; unknown ones are ignored,
// so every exit, delete and sync may call it.
func (w *Watcher) gone(r ref, exited time.Time, status uint32) {
	cg, ok := w.live[r]
	if !ok {
		return
	}
	delete(w.live, r)
	w.setLive(false)
	info, changed := w.cache.MarkGone(cg, exited, status)
	if changed && w.cfg.OnGone != nil {
		w.cfg.OnGone(info)
	}
}
