package container

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ringfence/ringfence/sensor/hostfs/fake"
)

func TestFallback(t *testing.T) {
	const id = "3f0b5a1c9d2e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8"
	// A stand-in cgroup2 tree: Fallback only stats and walks it.
	root := t.TempDir()
	paths := map[string]string{
		"pod":    "/kubepods/burstable/pod5d2c7f4e-8a1b-4c3d-9e0f-123456789abc/" + id,
		"docker": "/system.slice/docker-" + id + ".scope",
		"host":   "/system.slice/sshd.service",
	}
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	proc := fake.Dir(t, map[string]string{"7/cgroup": "0::" + paths["docker"] + "\n"})

	tests := []struct {
		name        string
		run         func() (Info, bool, error)
		wantOK      bool
		wantRuntime string
		wantPath    string
		wantPid     uint32
	}{
		{
			name:   "by id, walking",
			run:    func() (Info, bool, error) { return Fallback(root, inode(t, filepath.Join(root, paths["pod"])), "") },
			wantOK: true, wantRuntime: RuntimeKubernetes, wantPath: paths["pod"],
		},
		{
			name:   "by path",
			run:    func() (Info, bool, error) { return Fallback(root, 0, paths["docker"]) },
			wantOK: true, wantRuntime: RuntimeDocker, wantPath: paths["docker"],
		},
		{
			name:   "by pid",
			run:    func() (Info, bool, error) { return FallbackForPid(root, proc, 7) },
			wantOK: true, wantRuntime: RuntimeDocker, wantPath: paths["docker"], wantPid: 7,
		},
		{
			name: "host cgroup",
			run:  func() (Info, bool, error) { return Fallback(root, 0, paths["host"]) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, ok, err := tt.run()
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				return
			}
			want := Info{ID: id, Name: id, Runtime: tt.wantRuntime, CgroupPath: tt.wantPath,
				CgroupID: inode(t, filepath.Join(root, tt.wantPath)), Pid: tt.wantPid}
			if info.ID != want.ID || info.Name != want.Name || info.Runtime != want.Runtime ||
				info.CgroupPath != want.CgroupPath || info.CgroupID != want.CgroupID || info.Pid != want.Pid {
				t.Errorf("got %+v\nwant %+v", info, want)
			}
		})
	}

	t.Run("unknown id", func(t *testing.T) {
		if _, _, err := Fallback(root, 1<<62+7, ""); err == nil {
			t.Error("no error for a cgroup id that is nowhere")
		}
	})
}
