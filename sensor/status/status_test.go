package status

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "run", "status.json")
	in := &Snapshot{PID: os.Getpid(), Tier: "cgroup-only", TierReason: "why", Lost: map[string]uint64{"ring_full_file": 3}}
	if err := Write(p, in); err != nil {
		t.Fatal(err)
	}
	out, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if out.Tier != in.Tier || out.Lost["ring_full_file"] != 3 || !out.Running() {
		t.Fatalf("read back %+v", out)
	}
	if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
		t.Fatal("temporary file left behind")
	}
	out.PID = 1 << 30
	if out.Running() {
		t.Fatal("a pid that does not exist counts as running")
	}
	if err := os.WriteFile(p, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(p); err == nil {
		t.Fatal("corrupt status accepted")
	}
}
