package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runTimeout bounds a foreground container run and every ctr call.
const runTimeout = time.Minute

// Runner runs containers with extra `ctr run` flags and in a chosen
// namespace. Its methods do not change it; With and In return new Runners.
type Runner struct {
	r     *Runtime
	ns    string
	flags []string
}

// With returns a Runner that passes flags to `ctr run` before the image, for
// example "--privileged", "--net-host", "--read-only", "--env", "K=V" or
// "--label", "k=v".
func (r *Runtime) With(flags ...string) Runner {
	return Runner{r: r, ns: r.Namespace}.With(flags...)
}

// In returns a Runner for namespace ns; the image must have been imported
// there (Config.Namespaces).
func (r *Runtime) In(ns string) Runner { return Runner{r: r, ns: ns} }

// Run runs args in a new container id, removed when it exits, and returns
// its standard output. A non-zero exit fails tb.
func (r *Runtime) Run(tb testing.TB, id string, args ...string) string {
	tb.Helper()
	return r.With().Run(tb, id, args...)
}

// RunDetached starts args in a new container id and returns once it runs.
// The container is removed when tb ends, if not before.
func (r *Runtime) RunDetached(tb testing.TB, id string, args ...string) *Container {
	tb.Helper()
	return r.With().RunDetached(tb, id, args...)
}

// With returns a Runner with flags added to ru's.
func (ru Runner) With(flags ...string) Runner {
	// A fresh slice, so Runners derived from one base never share appends.
	ru.flags = append(slices.Clip(ru.flags), flags...)
	return ru
}

// In returns ru for namespace ns.
func (ru Runner) In(ns string) Runner {
	ru.ns = ns
	return ru
}

// Run is Runtime.Run with ru's flags and namespace.
func (ru Runner) Run(tb testing.TB, id string, args ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	out, err := ru.Try(ctx, id, args...)
	if err != nil {
		tb.Fatalf("container %s: %v\noutput: %s", id, err, out)
	}
	return out
}

// Try runs args like Run but returns the error, for tests that expect the
// container to fail.
func (ru Runner) Try(ctx context.Context, id string, args ...string) (string, error) {
	full := append([]string{"run", "--rm"}, ru.flags...)
	full = append(full, ru.r.Image, id)
	return ru.r.Ctr(ctx, ru.ns, append(full, args...)...)
}

// RunDetached is Runtime.RunDetached with ru's flags and namespace.
func (ru Runner) RunDetached(tb testing.TB, id string, args ...string) *Container {
	tb.Helper()
	c := &Container{ID: id, Namespace: ru.ns, r: ru.r, log: filepath.Join(tb.TempDir(), id+".log")}
	// A log file rather than ctr's FIFOs: nobody reads those once ctr
	// returns, and the output stays readable after the container is gone.
	full := append([]string{"run", "--detach", "--log-uri", "file://" + c.log}, ru.flags...)
	full = append(full, ru.r.Image, id)
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	tb.Cleanup(func() {
		if err := c.remove(); err != nil {
			tb.Errorf("removing container %s: %v", id, err)
		}
	})
	if _, err := ru.r.Ctr(ctx, ru.ns, append(full, args...)...); err != nil {
		tb.Fatalf("starting container %s: %v", id, err)
	}
	return c
}

// Container is a container started by RunDetached.
type Container struct {
	// ID is the container id, also its name for ctr.
	ID string
	// Namespace is the containerd namespace it runs in.
	Namespace string

	r   *Runtime
	log string
}

// Pid returns the host pid of the container's init process. It fails tb if
// the container has no task.
func (c *Container) Pid(tb testing.TB) int {
	tb.Helper()
	pid, _, err := c.task()
	if err != nil {
		tb.Fatalf("container %s: %v", c.ID, err)
	}
	return pid
}

// Status returns the task status as ctr prints it (RUNNING, STOPPED, ...),
// or "" when the container has no task.
func (c *Container) Status(tb testing.TB) string {
	tb.Helper()
	_, status, err := c.task()
	if isNotFound(err) {
		return ""
	}
	if err != nil {
		tb.Fatalf("container %s: %v", c.ID, err)
	}
	return status
}

// Output returns what the container wrote to stdout and stderr so far.
func (c *Container) Output(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(c.log)
	if err != nil && !os.IsNotExist(err) {
		tb.Fatalf("container %s output: %v", c.ID, err)
	}
	return string(b)
}

// Kill sends SIGKILL to the container's processes and waits until its task
// has stopped; the task and container stay until Remove.
func (c *Container) Kill(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	if _, err := c.r.Ctr(ctx, c.Namespace, "tasks", "kill", "--all", "--signal", "SIGKILL", c.ID); err != nil {
		tb.Fatalf("killing container %s: %v", c.ID, err)
	}
	for {
		_, status, err := c.task()
		if err != nil {
			tb.Fatalf("container %s: %v", c.ID, err)
		}
		if status == "STOPPED" {
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("container %s still %s after SIGKILL", c.ID, status)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Remove kills the container if it runs and deletes its task and itself.
// Removing it twice, or after the runtime went Down, is fine.
func (c *Container) Remove(tb testing.TB) {
	tb.Helper()
	if err := c.remove(); err != nil {
		tb.Fatalf("removing container %s: %v", c.ID, err)
	}
}

func (c *Container) remove() error {
	if !c.r.Running() {
		// Down already took it, with everything else.
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	if _, err := c.r.Ctr(ctx, c.Namespace, "tasks", "delete", "--force", c.ID); err != nil && !isNotFound(err) {
		return err
	}
	if _, err := c.r.Ctr(ctx, c.Namespace, "containers", "delete", c.ID); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

// task returns the pid and status of the container's task from `ctr tasks
// ls`, whose rows read "ID PID STATUS".
func (c *Container) task() (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	out, err := c.r.Ctr(ctx, c.Namespace, "tasks", "ls")
	if err != nil {
		return 0, "", err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != c.ID {
			continue
		}
		pid, err := strconv.Atoi(f[1])
		if err != nil {
			return 0, "", fmt.Errorf("ctr tasks ls: bad pid in %q", line)
		}
		return pid, f[2], nil
	}
	return 0, "", fmt.Errorf("task %s: not found", c.ID)
}
