package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/api"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/store"
	"github.com/ringfence/ringfence/test/runtime"
	"github.com/ringfence/ringfence/test/testenv"
)

// TestContainerIdentity runs a container with a real containerd and runc:
// the daemon watches it without --watch-cgroup, and its events carry the
// container's id, name and image as ctr knows them.
func TestContainerIdentity(t *testing.T) {
	testenv.Privileged(t)
	rt := runtime.Start(t)
	bin := build(t)
	d := startDaemon(t, bin, "--containerd-socket", rt.Socket)
	id := rt.NewID(t, "rf-identity")
	// The pause lets the watcher see the task before the write; holding a
	// container's first instruction until it is classified is not built yet.
	rt.Run(t, id, "sh", "-c", "sleep 1; echo x > /tmp/identity-marker")

	client := api.NewClient(d.socket())
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := client.Query(ctx, store.Query{Kinds: []event.Kind{event.KindFile}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range res.Events {
			var e event.Event
			if json.Unmarshal(raw, &e) != nil || e.Path != "/tmp/identity-marker" {
				continue
			}
			if e.Container == nil {
				t.Fatalf("event without its container: %s", raw)
			}
			if e.Container.ID != id || e.Container.Name != id || e.Container.Image != rt.Image {
				t.Fatalf("container %+v, want id and name %s, image %s", *e.Container, id, rt.Image)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			list, err := client.Containers(ctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range list {
				if c.ID == id && c.CgroupID == e.CgroupID && c.Image == rt.Image {
					return
				}
			}
			t.Fatalf("ringfence containers does not list %s with cgroup %d: %+v", id, e.CgroupID, list)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no file event from container %s; daemon stderr:\n%s", id, tail(d.stderr.String()))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}
