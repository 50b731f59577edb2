package sensor

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/test/runtime"
)

// containerHarness is a sensor following a private containerd, as the
// daemon does, with policies from files.
type containerHarness struct {
	s   *Sensor
	rec *recorder
	rt  *runtime.Runtime
	// helper is this test binary, mounted into containers as /rf-helper.
	helper string
}

// newContainerHarness starts containerd and a sensor that follows it,
// with the policy documents given (written to a file it returns too).
func newContainerHarness(t *testing.T, policies string) (*containerHarness, string) {
	t.Helper()
	return newContainerHarnessWith(t, policies, runtime.Config{})
}

// newContainerHarnessWith is newContainerHarness with containerd set up by
// cfg; the sensor holds the containers of its first namespace.
func newContainerHarnessWith(t *testing.T, policies string, cfg runtime.Config) (*containerHarness, string) {
	t.Helper()
	self := staticSelf(t)
	rt := runtime.StartWith(t, cfg)
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(policies), 0o644); err != nil {
		t.Fatal(err)
	}
	var (
		sMu sync.Mutex
		s   *Sensor
	)
	sensorNow := func() *Sensor { sMu.Lock(); defer sMu.Unlock(); return s }
	w, err := container.NewWatcher(container.WatcherConfig{
		Socket: rt.Socket,
		Cache:  container.NewCache(container.CacheConfig{}),
		OnStart: func(i container.Info) {
			if s := sensorNow(); s != nil {
				s.ContainerStarted(i)
			}
		},
		OnGone: func(i container.Info) {
			if s := sensorNow(); s != nil {
				s.ContainerGone(i)
			}
		},
		MinBackoff: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal(err)
	}
	cfgSensor := Config{Containers: w.Cache(), Runtime: w, RuntimeParents: []string{rt.Namespace}, HoldTimeout: 5 * time.Second, RuntimeBinaries: []string{runc},
		Sinks: []Sink{rec}, Interval: 200 * time.Millisecond, RuntimeSocket: rt.Socket}
	if policies != "" {
		cfgSensor.Policies = []string{policyFile}
	}
	sn, err := New(cfgSensor)
	if err != nil {
		t.Fatal(err)
	}
	sMu.Lock()
	s = sn
	sMu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	done := make(chan error, 1)
	go func() { done <- sn.Run(ctx) }()
	t.Cleanup(func() {
		if h := sn.Snapshot().Holds; h["apply_errors"]+h["watch_errors"] != 0 {
			t.Errorf("containers not watched or not put under their policies: %v", h)
		}
		cancel()
		wg.Wait()
		if err := <-done; err != nil {
			t.Errorf("sensor run: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !w.Status().Connected {
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not connect to containerd")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &containerHarness{s: sn, rec: rec, rt: rt, helper: self}, policyFile
}

// staticSelf returns this test binary's path, which must be statically
// linked to run inside a busybox container.
func staticSelf(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked and cannot run in the test container: build the tests with CGO_ENABLED=0 (make test does)", self)
		}
	}
	return self
}

// helperRunner returns a runner for the batch helper in a container, with
// extra ctr flags.
func (h *containerHarness) helperRunner(nops int, flags ...string) runtime.Runner {
	return h.rt.With(append([]string{
		"--mount", "type=bind,src=" + h.helper + ",dst=/rf-helper,options=rbind:ro",
		"--env", helperEnv + "=batch", "--env", helperArgcEnv + "=" + strconv.Itoa(nops),
	}, flags...)...)
}

// runBatch runs ops in a new container named id and returns their results.
func (h *containerHarness) runBatch(t *testing.T, id string, ops []string, flags ...string) map[string]string {
	t.Helper()
	out := h.helperRunner(len(ops), flags...).Run(t, id, append([]string{"/rf-helper", "-test.run=^$"}, ops...)...)
	return parseResults(out)
}

// waitOutput waits until the container's output contains s.
func waitOutput(t *testing.T, c *runtime.Container, s string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := c.Output(t)
		if strings.Contains(out, s) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s never wrote %q; it wrote %q", c.ID, s, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// violationsOf returns the violation events of the container id.
func (h *containerHarness) violationsOf(id string) []event.Event {
	var out []event.Event
	for _, e := range h.rec.all() {
		if e.Kind == event.KindViolation && e.Container != nil && e.Container.ID == id {
			out = append(out, e)
		}
	}
	return out
}

func describe(es []event.Event) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "\n  %s %s op=%s addr=%s port=%d path=%q device=%q policy=%s suppressed=%d", e.Verdict, e.Rule, e.Op, e.Addr, e.Port, e.Path, e.Device, e.Policy, e.Suppressed)
	}
	return b.String()
}
