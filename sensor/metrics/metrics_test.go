package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/status"
)

type fakeSource struct {
	snap  status.Snapshot
	ready bool
}

func (f *fakeSource) Snapshot() *status.Snapshot { return &f.snap }
func (f *fakeSource) Ready() bool                { return f.ready }

func source() *fakeSource {
	return &fakeSource{snap: status.Snapshot{
		Tier:        "cgroup-only",
		Events:      map[string]uint64{"exec/allow": 3, "file/allow": 5},
		Lost:        map[string]uint64{"ring_full_file": 2, "store_write_error": 0},
		Stalls:      map[string]uint64{"reader_queue": 4},
		SinkDropped: map[string]uint64{"stdout_behind": 6},
		Hooks:       []status.Hook{{Program: "a", Attached: true}, {Program: "b"}},
		Store:       &status.Store{Bytes: 4096, Segments: 1},
		Runtime:     &status.Runtime{Connected: true, Reconnects: 2},
		Policy:      &enforce.Status{Generation: 3},
		Violations:  map[string]uint64{"web/readOnlyRootFilesystem/enforce": 7, "web/bindInterfaces/enforce": 1},
	}}
}

// TestLint fails on any problem client_golang's linter finds (names, units,
// help text, counter suffixes) in everything the registry exposes.
func TestLint(t *testing.T) {
	reg := NewRegistry(source(), "test")
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestValues(t *testing.T) {
	reg := NewRegistry(source(), "test")
	want := `
# HELP ringfence_events_lost_total Events lost, by cause (kernel ring full per kind, undecodable, unencodable, queue_closed, store write errors).
# TYPE ringfence_events_lost_total counter
ringfence_events_lost_total{cause="ring_full_file"} 2
ringfence_events_lost_total{cause="store_write_error"} 0
# HELP ringfence_events_total Events delivered by the sensor.
# TYPE ringfence_events_total counter
ringfence_events_total{kind="exec",verdict="allow"} 3
ringfence_events_total{kind="file",verdict="allow"} 5
# HELP ringfence_hooks_attached Kernel programs attached.
# TYPE ringfence_hooks_attached gauge
ringfence_hooks_attached 1
# HELP ringfence_sink_dropped_total Events one sink dropped while the others wrote them (JSON lines on stdout: stdout_behind, its reader fell behind; stdout_yielded, the kernel ring was filling and stdout gave way to the store); the store has them.
# TYPE ringfence_sink_dropped_total counter
ringfence_sink_dropped_total{cause="stdout_behind"} 6
# HELP ringfence_policy_generation Generation of the policy set in force (0: none loaded).
# TYPE ringfence_policy_generation gauge
ringfence_policy_generation 3
# HELP ringfence_violations_total Policy violations, denied or audited.
# TYPE ringfence_violations_total counter
ringfence_violations_total{mode="enforce",policy="web",rule="bindInterfaces"} 1
ringfence_violations_total{mode="enforce",policy="web",rule="readOnlyRootFilesystem"} 7
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ringfence_events_total", "ringfence_events_lost_total", "ringfence_hooks_attached",
		"ringfence_sink_dropped_total", "ringfence_policy_generation", "ringfence_violations_total"); err != nil {
		t.Fatal(err)
	}
}

func TestHealthEndpoints(t *testing.T) {
	src := source()
	h := Handler(NewRegistry(src, "test"), src)
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, _ := get("/readyz"); code != 503 {
		t.Fatalf("readyz while not ready: %d", code)
	}
	src.ready = true
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz when ready: %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "ringfence_build_info") || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_open_fds") {
		t.Fatalf("metrics %d:\n%s", code, body)
	}
}

func TestHoldAndRuntimeValues(t *testing.T) {
	src := source()
	src.snap.Holds = map[string]uint64{"classified": 4, "timeout": 1, "recovered": 2}
	src.snap.Runtime = &status.Runtime{Connected: false, Reconnects: 3}
	want := `
# HELP ringfence_holds_total Outcomes of holding new containers before their first instruction (classified, cgroup_path, timeout; held_execs, runtime_execs, recovered, parked_overflow; release, apply and watch errors).
# TYPE ringfence_holds_total counter
ringfence_holds_total{outcome="classified"} 4
ringfence_holds_total{outcome="recovered"} 2
ringfence_holds_total{outcome="timeout"} 1
# HELP ringfence_runtime_connected 1 while connected to the container runtime, 0 while running on the cgroup fallback.
# TYPE ringfence_runtime_connected gauge
ringfence_runtime_connected 0
# HELP ringfence_runtime_reconnects_total Reconnections to the container runtime.
# TYPE ringfence_runtime_reconnects_total counter
ringfence_runtime_reconnects_total 3
`
	if err := testutil.GatherAndCompare(NewRegistry(src, "test"), strings.NewReader(want), "ringfence_holds_total", "ringfence_runtime_connected", "ringfence_runtime_reconnects_total"); err != nil {
		t.Fatal(err)
	}
}

func TestKernelMapsAndUnapplied(t *testing.T) {
	src := source()
	src.snap.Holds = map[string]uint64{}
	src.snap.Unapplied = map[uint64]string{7: "bind_addrs full"}
	src.snap.KernelMaps = map[string]int{"members": 3}
	src.snap.KernelMapCapacity = map[string]int{"members": 65536}
	src.snap.Untracked = 5
	want := `
# HELP ringfence_containers_held_unapplied Containers held before their first instruction because their policies could not be applied.
# TYPE ringfence_containers_held_unapplied gauge
ringfence_containers_held_unapplied 1
# HELP ringfence_kernel_map_capacity Capacity of those maps (--kernel-map-entries).
# TYPE ringfence_kernel_map_capacity gauge
ringfence_kernel_map_capacity{map="members"} 65536
# HELP ringfence_kernel_map_entries Entries of the kernel maps that grow with containers and cgroups.
# TYPE ringfence_kernel_map_entries gauge
ringfence_kernel_map_entries{map="members"} 3
# HELP ringfence_violation_counts_untracked_total Identical-violation counts the daemon could not remember, its table full.
# TYPE ringfence_violation_counts_untracked_total counter
ringfence_violation_counts_untracked_total 5
`
	if err := testutil.GatherAndCompare(NewRegistry(src, "test"), strings.NewReader(want), "ringfence_containers_held_unapplied",
		"ringfence_kernel_map_capacity", "ringfence_kernel_map_entries", "ringfence_violation_counts_untracked_total"); err != nil {
		t.Fatal(err)
	}
}
