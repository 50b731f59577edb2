package vmtests

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cpioEntry is one entry read back from a newc archive.
type cpioEntry struct {
	mode         uint32
	data         string
	major, minor uint32
}

// readCPIO parses a newc archive, checking magic and alignment.
func readCPIO(tb testing.TB, b []byte) map[string]cpioEntry {
	tb.Helper()
	out := map[string]cpioEntry{}
	off := 0
	field := func(i int) uint32 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			tb.Fatalf("cpio header at %d field %d: %v", off, i, err)
		}
		return uint32(v)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if off%4 != 0 || off+110 > len(b) || string(b[off:off+6]) != "070701" {
			tb.Fatalf("bad cpio header at offset %d", off)
		}
		mode, size, namesize := field(1), int(field(6)), int(field(11))
		name := string(b[off+110 : off+110+namesize-1])
		dataOff := align(off + 110 + namesize)
		if name == "TRAILER!!!" {
			return out
		}
		out[name] = cpioEntry{mode: mode, data: string(b[dataOff : dataOff+size]), major: field(9), minor: field(10)}
		off = align(dataOff + size)
	}
}

// readImage decompresses and parses an initramfs file.
func readImage(tb testing.TB, path string) map[string]cpioEntry {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		tb.Fatal(err)
	}
	return readCPIO(tb, b)
}

// writeFile creates a file with the given content and mode under dir.
func writeFile(tb testing.TB, dir, name, content string, mode os.FileMode) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestCPIOWriter(t *testing.T) {
	var buf bytes.Buffer
	cw := newCPIOWriter(&buf)
	steps := []error{
		cw.Dir("bin", 0o755),
		cw.File("bin/x", 0o700, 5, strings.NewReader("hello")),
		cw.File("empty", 0o644, 0, strings.NewReader("")),
		cw.Symlink("bin/sh", "busybox"),
		cw.CharDev("console", 0o600, 5, 1),
		cw.Close(),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	got := readCPIO(t, buf.Bytes())
	want := map[string]cpioEntry{
		"bin":     {mode: modeDir | 0o755},
		"bin/x":   {mode: modeRegular | 0o700, data: "hello"},
		"empty":   {mode: modeRegular | 0o644},
		"bin/sh":  {mode: modeSymlink | 0o777, data: "busybox"},
		"console": {mode: modeCharDev | 0o600, major: 5, minor: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %v", len(got), len(want), got)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %+v, want %+v", name, got[name], w)
		}
	}
	if cpio, err := exec.LookPath("cpio"); err == nil {
		cmd := exec.Command(cpio, "-t", "--quiet")
		cmd.Stdin = bytes.NewReader(buf.Bytes())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("cpio -t: %v", err)
		}
		if got := strings.Fields(string(out)); len(got) != 5 {
			t.Errorf("cpio -t lists %q", got)
		}
	}
}

func TestBuildInitramfs(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{
		CacheDir: filepath.Join(dir, "cache"),
		Busybox:  writeFile(t, dir, "busybox", "not really busybox", 0o755),
		Tests:    []string{writeFile(t, dir, "a.test", "A", 0o755), writeFile(t, dir, "b.test", "B", 0o755)},
		Run:      "TestX|Test'Y",
		Extras:   []Extra{{Src: writeFile(t, dir, "tool.sh", "#!/bin/sh\n", 0o750), Dst: "/opt/bin/tool"}},
	}.withDefaults()
	mods := []KernelModules{
		{Release: "6.1.0-1-amd64", Files: []string{writeFile(t, dir, "dep.ko", "D", 0o600), writeFile(t, dir, "over-lay.ko", "O", 0o600)}},
		{Release: "6.12.1+deb12-amd64"},
	}
	got, err := buildInitramfs(context.Background(), cfg, mods)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Tests, ",") != "a.test,b.test" {
		t.Errorf("Tests = %q", got.Tests)
	}
	files := readImage(t, got.Path)
	checks := []struct {
		name string
		mode uint32
		data string
	}{
		{name: "bin/busybox", mode: modeRegular | 0o755, data: "not really busybox"},
		{name: "bin/sh", mode: modeSymlink | 0o777, data: "busybox"},
		{name: "tests/a.test", mode: modeRegular | 0o755, data: "A"},
		{name: "tests/b.test", mode: modeRegular | 0o755, data: "B"},
		{name: "opt", mode: modeDir | 0o755},
		{name: "opt/bin/tool", mode: modeRegular | 0o750, data: "#!/bin/sh\n"},
		{name: "dev/console", mode: modeCharDev | 0o600},
		{name: "proc", mode: modeDir | 0o755},
		{name: "lib/modules/6.1.0-1-amd64/dep.ko", mode: modeRegular | 0o600, data: "D"},
		{name: "lib/modules/6.1.0-1-amd64/over_lay.ko", mode: modeRegular | 0o600, data: "O"},
		{name: "lib/modules/6.1.0-1-amd64/vmtest.load", mode: modeRegular | 0o644, data: "dep\nover_lay\n"},
	}
	for _, c := range checks {
		e, ok := files[c.name]
		if !ok || e.mode != c.mode || (c.data != "" && e.data != c.data) {
			t.Errorf("%s = %+v (present %v), want mode %o data %q", c.name, e, ok, c.mode, c.data)
		}
	}
	if _, ok := files["lib/modules/6.12.1+deb12-amd64"]; ok {
		t.Errorf("a kernel without modules got a module directory")
	}
	script := files["init"].data
	for _, want := range []string{
		"exec switch_root /newroot /init",
		"ln -s /proc/self/fd /dev/fd",
		`insmod "$mods/$m.ko"`,
		"mnt securityfs securityfs /sys/kernel/security",
		"mnt bpf bpffs /sys/fs/bpf",
		"mnt cgroup2 cgroup2 /sys/fs/cgroup",
		"RINGFENCE_VMTEST=1 RINGFENCE_REQUIRE_PRIVILEGED=1",
		`run_test 'a.test' -test.v -test.count=1 -test.timeout=450s '-test.run=TestX|Test'\''Y'`,
		"RINGFENCE-DONE",
		"poweroff -f",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("/init lacks %q:\n%s", want, script)
		}
	}

	again, err := buildInitramfs(context.Background(), cfg, mods)
	if err != nil || again.Path != got.Path {
		t.Errorf("rebuild = %q, %v; want the cached %q", again.Path, err, got.Path)
	}
}

func TestBuildInitramfsErrors(t *testing.T) {
	dir := t.TempDir()
	busybox := writeFile(t, dir, "busybox", "bb", 0o755)
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{
			name:    "missing busybox",
			cfg:     Config{Busybox: filepath.Join(dir, "nobusybox")},
			wantErr: "install the busybox-static package",
		},
		{
			name:    "missing test binary",
			cfg:     Config{Busybox: busybox, Tests: []string{filepath.Join(dir, "gone.test")}},
			wantErr: "gone.test",
		},
		{
			name: "same basename twice",
			cfg: Config{Busybox: busybox, Tests: []string{
				writeFile(t, dir, "x.test", "1", 0o755), writeFile(t, sub, "x.test", "2", 0o755),
			}},
			wantErr: "share the basename x.test",
		},
		{
			name:    "extra below a file",
			cfg:     Config{Busybox: busybox, Extras: []Extra{{Src: busybox, Dst: "/bin/busybox/x"}}},
			wantErr: "not a directory",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.CacheDir = filepath.Join(dir, "cache")
			_, err := buildInitramfs(context.Background(), tc.cfg.withDefaults(), nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("buildInitramfs error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseExtra(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Extra
		wantErr bool
	}{
		{name: "plain", in: "/usr/bin/runc:/usr/local/bin/runc", want: Extra{Src: "/usr/bin/runc", Dst: "/usr/local/bin/runc"}},
		{name: "relative source", in: "bin/containerd:/usr/bin/containerd", want: Extra{Src: "bin/containerd", Dst: "/usr/bin/containerd"}},
		{name: "destination cleaned", in: "a:/opt//x/../y", want: Extra{Src: "a", Dst: "/opt/y"}},
		{name: "relative destination", in: "a:opt/a", wantErr: true},
		{name: "no colon", in: "/usr/bin/runc", wantErr: true},
		{name: "empty source", in: ":/x", wantErr: true},
		{name: "empty destination", in: "/x:", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseExtra(tc.in)
			if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
				t.Fatalf("ParseExtra(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestTestTimeout(t *testing.T) {
	if got := testTimeout(10 * time.Minute); got != 450*time.Second {
		t.Errorf("testTimeout(10m) = %v, want 7m30s", got)
	}
}

func TestLineWriter(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{name: "split across writes", writes: []string{"ab", "c\r\nde", "f\n"}, want: []string{"abc", "def"}},
		{name: "partial line flushed", writes: []string{"x\ny"}, want: []string{"x", "y"}},
		{name: "empty lines kept", writes: []string{"\n\n"}, want: []string{"", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			w := &lineWriter{emit: func(s string) { got = append(got, s) }}
			for _, s := range tc.writes {
				if _, err := w.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			w.flush()
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("lines = %q, want %q", got, tc.want)
			}
		})
	}
}
