package container

import (
	"os"
	"path/filepath"
	"testing"
	"time"
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
			proc := fakeProc(t, map[string]string{
				"stat":    "cpu  1 2 3\nbtime 1767225600\nprocesses 9\n",
				"42/stat": tt.stat,
			})
			got, err := processStart(proc, 42)
			if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
				t.Errorf("processStart = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// fakeProc writes files, by path relative to it, into a stand-in for /proc.
func fakeProc(tb testing.TB, files map[string]string) string {
	tb.Helper()
	root := tb.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return root
}
