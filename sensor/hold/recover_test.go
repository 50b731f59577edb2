package hold

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/hostfs"
	"github.com/ringfence/ringfence/sensor/hostfs/fake"
)

var ctrID = strings.Repeat("0123456789abcdef", 4)

// stoppedProc is a fake /proc entry of a stopped process.
func stoppedProc(pid string) map[string]string {
	return map[string]string{
		pid + "/stat":    pid + " (app) T 1 " + pid + " " + pid + " 0",
		pid + "/comm":    "app\n",
		pid + "/cmdline": "/app\x00--serve\x00",
		pid + "/status":  "Name:\tapp\nUid:\t1000\t1000\t1000\t1000\nGid:\t2000\t2000\t2000\t2000\n",
	}
}

// TestRecoverLostHold: a process stopped in a pending cgroup whose report
// never came is taken as held once the ring was seen drained, rebuilt from
// /proc, and let go when the container is named.
func TestRecoverLostHold(t *testing.T) {
	cg2 := fake.Dir(t, map[string]string{"default/" + ctrID + "/cgroup.procs": "21\n"})
	proc := fake.Dir(t, stoppedProc("21"))
	id, err := hostfs.CgroupID(cg2, "default/"+ctrID)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, time.Hour, cg2, proc, "default")
	r.kern.pending = []uint64{id}
	r.h.Poll(false) // first seen: its report may still be in the ring
	r.h.Poll(false) // not drained since: still maybe in the ring
	if r.h.waiting(id) {
		t.Fatal("adopted before the ring was seen drained")
	}
	r.h.Poll(true)
	if !r.h.waiting(id) {
		t.Fatal("not adopted once the ring was seen drained")
	}
	info := container.Info{ID: ctrID, CgroupID: id}
	r.cache.Put(info)
	r.h.Known(info)
	e := r.next(t)
	if e.Kind != event.KindExec || e.Source != SourceProcfs || e.PID != 21 || e.TID != 21 || e.PPID != 1 || e.CgroupID != id ||
		e.Comm != "app" || !slices.Equal(e.Args, []string{"/app", "--serve"}) || e.UID != 1000 || e.GID != 2000 ||
		e.HoldOutcome != "released" {
		t.Fatalf("recovered exec %+v", e)
	}
	if c := r.h.Counts(); c["recovered"] != 1 || c["held_execs"] != 1 {
		t.Fatalf("counts %v", c)
	}
}

// TestAdoptRunning: at start, a running container is named from its path,
// watched, and its only process, stopped by a sensor that is gone, let go;
// a pending cgroup is left to the hold.
func TestAdoptRunning(t *testing.T) {
	other := strings.Repeat("fedcba9876543210", 4)
	cg2 := fake.Dir(t, map[string]string{
		"default/" + ctrID + "/cgroup.procs": "22\n",
		"default/" + other + "/cgroup.procs": "",
	})
	proc := fake.Dir(t, stoppedProc("22"))
	id, _ := hostfs.CgroupID(cg2, "default/"+ctrID)
	pendingID, _ := hostfs.CgroupID(cg2, "default/"+other)
	r := newRig(t, time.Hour, cg2, proc, "default")
	r.kern.pending = []uint64{pendingID}
	r.h.AdoptRunning()
	if info, ok := r.cache.Lookup(id); !ok || info.ID != ctrID || info.CgroupPath != "/default/"+ctrID {
		t.Fatalf("running container not named from its path: %+v", info)
	}
	if _, ok := r.cache.Lookup(pendingID); ok {
		t.Fatal("a pending cgroup was adopted as running")
	}
	if !slices.Equal(r.kern.watched, []uint64{id}) {
		t.Fatalf("watched %v", r.kern.watched)
	}
	if e := r.next(t); e.PID != 22 || e.Source != SourceProcfs || e.HoldOutcome != "released" {
		t.Fatalf("adopted exec %+v", e)
	}
}
