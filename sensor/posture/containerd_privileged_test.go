package posture

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/test/runtime"
	"github.com/ringfence/ringfence/test/testenv"
)

// TestPrivilegedContainerdSpecs starts real containers with the ctr flags that change
// a container's posture, reads each one's spec back from containerd as the
// sensor does, and checks what Evaluate finds in it.
func TestPrivilegedContainerdSpecs(t *testing.T) {
	testenv.Privileged(t)
	rt := runtime.Start(t)
	cl, err := client.New(rt.Socket, client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("connecting to containerd: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	ctx := namespaces.WithNamespace(context.Background(), rt.Namespace)

	// What a plain `ctr run` container fails.
	base := map[string]string{
		"4.1":  "process runs as uid 0 (root)",
		"5.13": "the root filesystem is writable",
		"5.22": "no seccomp profile",
		"5.31": "no user namespace of its own",
	}
	sockDir := filepath.Dir(rt.Socket)
	tests := []struct {
		name  string
		flags []string
		// spec, if set, creates the container with the Go client instead,
		// for settings ctr 1.6 has no flag for.
		spec []oci.SpecOpts
		// sandbox, if set, starts a container first whose pid, network,
		// ipc and uts namespaces this one joins by path.
		sandbox bool
		opts    Options
		want    map[string]string
	}{
		{name: "default", want: base},
		{name: "privileged", flags: []string{"--privileged"}, want: with(base, map[string]string{
			"5.4": "beyond Docker's default set: CAP_AUDIT_CONTROL, ",
			"5.5": "inferred from the spec: CAP_SYS_ADMIN among",
		})},
		{name: "net-host", flags: []string{"--net-host"}, want: with(base, map[string]string{
			"5.10": "no network namespace of its own",
		})},
		{name: "host-etc", flags: []string{"--mount", "type=bind,src=/etc,dst=/host-etc,options=rbind:ro"}, want: with(base, map[string]string{
			"5.6": "/etc at /host-etc (ro)",
		})},
		{name: "cap-sys-admin", flags: []string{"--cap-add", "CAP_SYS_ADMIN"}, want: with(base, map[string]string{
			"5.4": "1 beyond Docker's default set: CAP_SYS_ADMIN",
		})},
		{name: "seccomp", flags: []string{"--seccomp"}, want: without(base, "5.22")},
		{name: "read-only", flags: []string{"--read-only"}, want: without(base, "5.13")},
		{name: "allow-new-privs", flags: []string{"--allow-new-privs"}, want: with(base, map[string]string{
			"5.26": "noNewPrivileges is not set",
		})},
		{name: "userns", flags: []string{"--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"}, want: with(without(base, "5.31"), map[string]string{
			"4.1": "uid 0 (root) inside a user namespace, mapped to host uid 100000",
		})},
		// As in a Kubernetes pod: the namespaces of a sandbox container,
		// joined by path, are the container's own, not the host's.
		{name: "pod-namespaces", sandbox: true, want: base},
		{name: "containerd-dir", flags: []string{"--mount", "type=bind,src=/var/run/containerd,dst=/run/containerd,options=bind:ro"}, want: with(base, map[string]string{
			"5.32": "/var/run/containerd at /run/containerd (ro), covering /run/containerd/containerd.sock",
		})},
		{name: "own-socket-dir", flags: []string{"--mount", "type=bind,src=" + sockDir + ",dst=/rf,options=bind:ro"},
			opts: Options{RuntimeSockets: []string{rt.Socket}}, want: with(base, map[string]string{
				"5.32": sockDir + " at /rf (ro), covering " + rt.Socket,
			})},
		{name: "own-socket-dir-unconfigured", flags: []string{"--mount", "type=bind,src=" + sockDir + ",dst=/rf,options=bind:ro"}, want: base},
		{name: "user-1000-host-pid-ipc-uts", spec: []oci.SpecOpts{
			oci.WithUIDGID(1000, 1000),
			oci.WithHostNamespace(specs.PIDNamespace),
			oci.WithHostNamespace(specs.IPCNamespace),
			oci.WithHostNamespace(specs.UTSNamespace),
		}, want: with(without(base, "4.1"), map[string]string{
			"5.16": "no pid namespace of its own",
			"5.17": "no ipc namespace of its own",
			"5.21": "no uts namespace of its own",
		})},
	}
	// The well-known runtime directory one case mounts: a VM's fresh root
	// has none until a containerd of its own makes it.
	if _, err := os.Stat("/var/run/containerd"); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll("/var/run/containerd", 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove("/var/run/containerd") })
	}
	var reports []Report
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := rt.NewID(t, "posture-"+tt.name)
			flags := tt.flags
			joined := map[specs.LinuxNamespaceType]string{}
			if tt.sandbox {
				pid := rt.RunDetached(t, rt.NewID(t, "posture-sandbox"), "sleep", "60").Pid(t)
				for _, typ := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace} {
					joined[typ] = fmt.Sprintf("/proc/%d/ns/%s", pid, nsFile[typ])
					flags = append(flags, "--with-ns", string(typ)+":"+joined[typ])
				}
			}
			if tt.spec != nil {
				startWithClient(t, ctx, cl, rt.Image, id, tt.spec...)
			} else {
				rt.With(flags...).RunDetached(t, id, "sleep", "60")
			}
			c, err := cl.LoadContainer(ctx, id)
			if err != nil {
				t.Fatalf("loading container %s: %v", id, err)
			}
			spec, err := c.Spec(ctx)
			if err != nil {
				t.Fatalf("spec of %s: %v", id, err)
			}
			// ctr must have joined what the test asked it to, or the
			// passing namespace checks would prove nothing.
			for _, ns := range linux(spec).Namespaces {
				if path, ok := joined[ns.Type]; ok {
					if ns.Path != path {
						t.Errorf("%s namespace joins %q, want %q", ns.Type, ns.Path, path)
					}
					delete(joined, ns.Type)
				}
			}
			if len(joined) > 0 {
				t.Errorf("namespaces missing from the spec: %v", joined)
			}
			got := tt.opts.Evaluate(spec)
			checkFindings(t, got, tt.want)
			reports = append(reports, Report{Container: event.Container{ID: id, Name: tt.name, Image: rt.Image}, Findings: got})
		})
	}
	var b strings.Builder
	if err := WriteTable(&b, reports); err != nil {
		t.Fatal(err)
	}
	t.Logf("posture of the test containers:\n%s", b.String())
}

// startWithClient creates a container from image with the Go client and
// starts its task, running sleep; both go when t ends.
func startWithClient(t *testing.T, ctx context.Context, cl *client.Client, image, id string, opts ...oci.SpecOpts) {
	t.Helper()
	img, err := cl.GetImage(ctx, image)
	if err != nil {
		t.Fatalf("image %s: %v", image, err)
	}
	opts = append([]oci.SpecOpts{oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "60")}, opts...)
	c, err := cl.NewContainer(ctx, id, client.WithImage(img), client.WithNewSnapshot(id, img), client.WithNewSpec(opts...))
	if err != nil {
		t.Fatalf("creating container %s: %v", id, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil {
			t.Errorf("deleting container %s: %v", id, err)
		}
	})
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("creating task %s: %v", id, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil {
			t.Errorf("deleting task %s: %v", id, err)
		}
	})
	if err := task.Start(ctx); err != nil {
		t.Fatalf("starting task %s: %v", id, err)
	}
}

// with returns m with add's entries added or replaced.
func with(m, add map[string]string) map[string]string {
	out := maps.Clone(m)
	maps.Copy(out, add)
	return out
}

// without returns m without keys.
func without(m map[string]string, keys ...string) map[string]string {
	out := maps.Clone(m)
	for _, k := range keys {
		delete(out, k)
	}
	return out
}
