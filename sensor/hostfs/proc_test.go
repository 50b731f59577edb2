package hostfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/hostfs/fake"
)

func TestParseProcCgroup(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string
		wantErr bool
	}{
		{name: "unified", content: "0::/default/web\n", want: "/default/web"},
		{name: "hybrid", content: "4:memory:/default/web\n1:name=systemd:/\n0::/default/web\n", want: "/default/web"},
		{name: "root", content: "0::/\n", want: "/"},
		{name: "v1 only", content: "4:memory:/docker/x\n", wantErr: true},
		{name: "deleted", content: "0::/default/web (deleted)\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcCgroup(tt.content)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseProcCgroup = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestProcessStart(t *testing.T) {
	const btime = 1767225600 // 2026-01-01T00:00:00Z
	tests := []struct {
		name    string
		stat    string
		want    time.Time
		wantErr bool
	}{
		{
			name: "plain",
			stat: "42 (sleep) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10 18446744073709551615",
			want: time.Unix(btime, 0).Add(123450 * time.Millisecond),
		},
		{
			name: "name with spaces and parens",
			stat: "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 200 1000 10 0",
			want: time.Unix(btime+2, 0),
		},
		{name: "short", stat: "42 (sleep) S 1", wantErr: true},
		{name: "garbage", stat: "nonsense", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc := fake.Dir(t, map[string]string{
				"stat":    "cpu  1 2 3\nbtime 1767225600\nprocesses 9\n",
				"42/stat": tt.stat,
			})
			got, err := ProcessStart(proc, 42)
			if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
				t.Errorf("processStart = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestReadProcess reads a running child's entry: every field.
func TestReadProcess(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := uint32(cmd.Process.Pid)
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	want, err := filepath.EvalSymlinks(sleep)
	if err != nil {
		t.Fatal(err)
	}
	var p Process
	ok := func() bool {
		return p.PPID == uint32(os.Getpid()) && p.UID == uint32(os.Getuid()) && p.GID == uint32(os.Getgid()) &&
			p.Comm == "sleep" && p.Exe == want && slices.Equal(p.Args, []string{"sleep", "30"})
	}
	// Read again until the exec is done: the fields change one by one.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if p = ReadProcess("/proc", pid); ok() {
			break
		}
	}
	if !ok() {
		t.Fatalf("read %+v, want ppid %d uid %d gid %d comm sleep exe %s args [sleep 30]",
			p, os.Getpid(), os.Getuid(), os.Getgid(), want)
	}
	if Stopped("/proc", pid) {
		t.Fatal("a sleeping process read as stopped")
	}
	if got := ReadProcess("/proc", 1<<31); !reflect.DeepEqual(got, Process{}) {
		t.Fatalf("no such process: %+v, want nothing", got)
	}
}

func TestStatusID(t *testing.T) {
	status := "Name:\tsleep\nUmask:\t0022\nUid:\t1000\t1001\t1002\t1003\nGid:\t2000\t2001\t2002\t2003\n"
	if u, g := statusID(status, "Uid:"), statusID(status, "Gid:"); u != 1000 || g != 2000 {
		t.Fatalf("uid %d gid %d, want the real ids 1000 and 2000", u, g)
	}
	if got := statusID("Name:\tx\n", "Uid:"); got != 0 {
		t.Fatalf("no Uid line: %d, want 0", got)
	}
}

// TestStopped reads the state field of a fake /proc: a stopped process,
// a running one, a command name with ") T " in it, and one that is gone.
func TestStopped(t *testing.T) {
	proc := fake.Dir(t, map[string]string{
		"1/stat": "1 (sh) T 0 1 1 0",
		"2/stat": "2 (sh) S 1 2 2 0",
		"3/stat": "3 (a) T (b) R 1 3 3 0",
	})
	for pid, want := range map[uint32]bool{1: true, 2: false, 3: false, 4: false} {
		if got := Stopped(proc, pid); got != want {
			t.Errorf("pid %d: stopped %v, want %v", pid, got, want)
		}
	}
}
