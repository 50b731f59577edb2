package decode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/bpf"
	"github.com/ringfence/ringfence/sensor/event"
)

func encode(tb testing.TB, v any) []byte {
	tb.Helper()
	buf := make([]byte, binary.Size(v))
	if _, err := binary.Encode(buf, binary.NativeEndian, v); err != nil {
		tb.Fatal(err)
	}
	return buf
}

func setStr(dst []int8, s string) uint32 {
	for i := range dst {
		dst[i] = 0
	}
	for i := 0; i < len(s) && i < len(dst); i++ {
		dst[i] = int8(s[i])
	}
	return uint32(len(s))
}

func hdr(kind bpf.SensorEventKind) bpf.SensorEventHdr {
	h := bpf.SensorEventHdr{TsBootNs: 5e9, CgroupId: 77, Pid: 10, Tid: 11, Ppid: 1, Uid: 1000, Gid: 1000, Kind: uint16(kind), Source: uint16(bpf.SensorEventSourceSOURCE_TRACEPOINT)}
	setStr(h.Comm[:], "sh")
	return h
}

type fakeResolver map[int32]string

func (f fakeResolver) Resolve(pid uint32, dirfd int32, rel string) (string, bool) {
	dir, ok := f[dirfd]
	if !ok {
		return "", false
	}
	if rel == "" {
		return dir, true
	}
	return dir + "/" + rel, true
}

func TestDecode(t *testing.T) {
	boot := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := New(boot, fakeResolver{-100: "/work", 3: "/etc/passwd"})

	exec := bpf.SensorExecEvent{Hdr: hdr(bpf.SensorEventKindKIND_EXEC)}
	exec.FilenameLen = setStr(exec.Filename[:], "/bin/echo")
	exec.ArgsLen = setStr(exec.Args[:], "echo\x00hello world\x00")

	file := bpf.SensorFileEvent{Hdr: hdr(bpf.SensorEventKindKIND_FILE), Op: uint32(bpf.SensorFileOpFILE_OP_RENAME), Dirfd: -100, Dirfd2: -100,
		PathKind: uint16(bpf.SensorPathKindPATH_RELATIVE), Path2Kind: uint16(bpf.SensorPathKindPATH_ABSOLUTE)}
	file.PathLen = setStr(file.Path[:], "a.txt")
	file.Path2Len = setStr(file.Path2[:], "/tmp/b.txt")

	fd := bpf.SensorFileEvent{Hdr: hdr(bpf.SensorEventKindKIND_FILE), Op: uint32(bpf.SensorFileOpFILE_OP_CHOWN), Dirfd: 3, PathKind: uint16(bpf.SensorPathKindPATH_FD), OwnerUid: 5, OwnerGid: 6}
	gone := bpf.SensorFileEvent{Hdr: hdr(bpf.SensorEventKindKIND_FILE), Op: uint32(bpf.SensorFileOpFILE_OP_CHMOD), Dirfd: 9, PathKind: uint16(bpf.SensorPathKindPATH_FD)}

	cut := bpf.SensorFileEvent{Hdr: hdr(bpf.SensorEventKindKIND_FILE), Op: uint32(bpf.SensorFileOpFILE_OP_OPEN), PathKind: uint16(bpf.SensorPathKindPATH_TRUNCATED)}
	cut.PathLen = setStr(cut.Path[:], "/d9/d10/f")
	cutTarget := bpf.SensorFileEvent{Hdr: hdr(bpf.SensorEventKindKIND_FILE), Op: uint32(bpf.SensorFileOpFILE_OP_RENAME),
		PathKind: uint16(bpf.SensorPathKindPATH_ABSOLUTE), Path2Kind: uint16(bpf.SensorPathKindPATH_TRUNCATED)}
	cutTarget.PathLen = setStr(cutTarget.Path[:], "/tmp/a")
	cutTarget.Path2Len = setStr(cutTarget.Path2[:], "/tmp/./././.")
	cutViolation := bpf.SensorViolationEvent{Hdr: hdr(bpf.SensorEventKindKIND_VIOLATION), Rule: uint16(bpf.SensorRuleRULE_READ_ONLY),
		Action: 2, Op: uint32(bpf.SensorFileOpFILE_OP_OPEN), PathKind: uint16(bpf.SensorPathKindPATH_TRUNCATED)}
	cutViolation.PathLen = setStr(cutViolation.Path[:], "/d30/d31/f")

	bind := bpf.SensorBindEvent{Hdr: hdr(bpf.SensorEventKindKIND_BIND), Family: 10, Port: 8080, Protocol: 6}
	bind.Addr[15] = 1
	bind4 := bpf.SensorBindEvent{Hdr: hdr(bpf.SensorEventKindKIND_BIND), Family: 2, Port: 53, Protocol: 17,
		Addr: [16]uint8{10: 0xff, 11: 0xff, 12: 10, 13: 0, 14: 0, 15: 7}} // IPv4-mapped, as every record stores it

	exit := bpf.SensorExitEvent{Hdr: hdr(bpf.SensorEventKindKIND_EXIT), ExitCode: 256}

	cases := []struct {
		name  string
		raw   []byte
		check func(t *testing.T, e event.Event)
	}{
		{"exec", encode(t, &exec), func(t *testing.T, e event.Event) {
			if e.Kind != event.KindExec || e.Binary != "/bin/echo" || len(e.Args) != 2 || e.Args[1] != "hello world" {
				t.Fatalf("%+v", e)
			}
		}},
		{"rename relative to cwd", encode(t, &file), func(t *testing.T, e event.Event) {
			if e.Op != "rename" || e.Path != "/work/a.txt" || e.Target != "/tmp/b.txt" || e.PathScope != "" {
				t.Fatalf("%+v", e)
			}
		}},
		{"chown by fd", encode(t, &fd), func(t *testing.T, e event.Event) {
			if e.Op != "chown" || e.Path != "/etc/passwd" || *e.OwnerUID != 5 || *e.OwnerGID != 6 {
				t.Fatalf("%+v", e)
			}
		}},
		{"unresolvable fd", encode(t, &gone), func(t *testing.T, e event.Event) {
			if e.Path != "fd:9" || e.PathScope != "unresolved" {
				t.Fatalf("%+v", e)
			}
		}},
		{"path cut short", encode(t, &cut), func(t *testing.T, e event.Event) {
			if e.Path != "/d9/d10/f" || e.PathScope != ScopeTruncated {
				t.Fatalf("%+v", e)
			}
		}},
		{"second path cut short", encode(t, &cutTarget), func(t *testing.T, e event.Event) {
			if e.Path != "/tmp/a" || e.Target != "/tmp/./././." || e.PathScope != "" || e.TargetScope != ScopeTruncated {
				t.Fatalf("%+v", e)
			}
		}},
		{"violation's path cut short", encode(t, &cutViolation), func(t *testing.T, e event.Event) {
			if e.Kind != event.KindViolation || e.Path != "/d30/d31/f" || e.PathScope != ScopeTruncated {
				t.Fatalf("%+v", e)
			}
		}},
		{"bind6", encode(t, &bind), func(t *testing.T, e event.Event) {
			if e.Family != "inet6" || e.Addr != "::1" || e.Port != 8080 || e.Proto != "tcp" {
				t.Fatalf("%+v", e)
			}
		}},
		{"bind4", encode(t, &bind4), func(t *testing.T, e event.Event) {
			if e.Family != "inet" || e.Addr != "10.0.0.7" || e.Port != 53 || e.Proto != "udp" {
				t.Fatalf("%+v", e)
			}
		}},
		{"exit", encode(t, &exit), func(t *testing.T, e event.Event) {
			if e.Kind != event.KindExit || e.ExitCode == nil || *e.ExitCode != 1 || e.Signal != 0 {
				t.Fatalf("%+v", e)
			}
		}},
	}
	// The kernel's exit code is wait(2)'s status: the exit status in the
	// second byte, or the signal in the low seven bits and 0x80 for a core.
	for _, c := range []struct {
		code   int32
		status *int32
		signal int32
		core   bool
	}{
		{0, ptr[int32](0), 0, false},
		{1 << 8, ptr[int32](1), 0, false},
		{255 << 8, ptr[int32](255), 0, false},
		{9, nil, 9, false},
		{0x80 | 11, nil, 11, true},
		{15, nil, 15, false},
	} {
		r := bpf.SensorExitEvent{Hdr: hdr(bpf.SensorEventKindKIND_EXIT), ExitCode: c.code}
		cases = append(cases, struct {
			name  string
			raw   []byte
			check func(t *testing.T, e event.Event)
		}{fmt.Sprintf("exit code %#x", c.code), encode(t, &r), func(t *testing.T, e event.Event) {
			if (e.ExitCode == nil) != (c.status == nil) || e.ExitCode != nil && *e.ExitCode != *c.status || e.Signal != c.signal || e.CoreDumped != c.core {
				t.Fatalf("exit_code %v, signal %d, core %v; want %v, %d, %v", deref(e.ExitCode), e.Signal, e.CoreDumped, deref(c.status), c.signal, c.core)
			}
		}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, _, err := d.Decode(c.raw)
			if err != nil {
				t.Fatal(err)
			}
			if e.PID != 10 || e.CgroupID != 77 || e.Comm != "sh" || !e.Time.Equal(boot.Add(5*time.Second)) {
				t.Fatalf("header fields: %+v", e)
			}
			c.check(t, e)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// deref shows a pointer's value, or nil.
func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestDecodeRejectsShortRecords(t *testing.T) {
	d := New(time.Now(), nil)
	full := encode(t, &bpf.SensorExecEvent{Hdr: hdr(bpf.SensorEventKindKIND_EXEC)})
	for _, n := range []int{0, 10, hdrSize - 1, hdrSize, len(full) - 1} {
		if _, _, err := d.Decode(full[:n]); !errors.Is(err, ErrShort) {
			t.Errorf("exec, %d bytes: err = %v, want ErrShort", n, err)
		}
	}
	// A file record ends after its last path's NUL, and no sooner.
	f := bpf.SensorFileEvent{Hdr: hdr(bpf.SensorEventKindKIND_FILE), PathKind: uint16(bpf.SensorPathKindPATH_ABSOLUTE)}
	f.PathLen = setStr(f.Path[:], "/etc/motd")
	file := encode(t, &f)
	end := filePathOff + len("/etc/motd") + 1
	for _, n := range []int{hdrSize, filePathOff, end - 1} {
		if _, _, err := d.Decode(file[:n]); !errors.Is(err, ErrShort) {
			t.Errorf("file, %d bytes: err = %v, want ErrShort", n, err)
		}
	}
	f.Path2Kind = uint16(bpf.SensorPathKindPATH_ABSOLUTE)
	f.Path2Len = setStr(f.Path2[:], "/etc/issue")
	file = encode(t, &f)
	if _, _, err := d.Decode(file[:filePath2Off]); !errors.Is(err, ErrShort) {
		t.Errorf("file with a second path cut before it: err = %v, want ErrShort", err)
	}
	bad := encode(t, &bpf.SensorExitEvent{Hdr: hdr(99)})
	if _, _, err := d.Decode(bad); err == nil || !strings.Contains(err.Error(), "unknown event kind 99") {
		t.Errorf("unknown kind: err = %v", err)
	}
}

// TestDecodeTrimmedFileRecords: a file record as the kernel writes it,
// cut after its last path's NUL, decodes as the whole struct does, and
// nothing of an earlier, longer record shows through its missing tail.
func TestDecodeTrimmedFileRecords(t *testing.T) {
	d := New(time.Unix(0, 0), nil)
	long := bpf.SensorFileEvent{Hdr: hdr(bpf.SensorEventKindKIND_FILE), Op: uint32(bpf.SensorFileOpFILE_OP_RENAME),
		PathKind: uint16(bpf.SensorPathKindPATH_ABSOLUTE), Path2Kind: uint16(bpf.SensorPathKindPATH_ABSOLUTE)}
	long.PathLen = setStr(long.Path[:], "/var/lib/"+strings.Repeat("x", 400))
	long.Path2Len = setStr(long.Path2[:], "/var/lib/"+strings.Repeat("y", 400))
	raw := encode(t, &long)
	end := filePath2Off + int(long.Path2Len) + 1
	if _, _, err := d.Decode(raw[:end]); err != nil {
		t.Fatalf("rename cut after its second path: %v", err)
	}

	cases := []struct {
		name         string
		op           bpf.SensorFileOp
		path, target string
	}{
		{"one path", bpf.SensorFileOpFILE_OP_CREATE, "/tmp/a", ""},
		{"two paths", bpf.SensorFileOpFILE_OP_RENAME, "/tmp/a", "/tmp/b"},
		{"empty path", bpf.SensorFileOpFILE_OP_OPEN, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := bpf.SensorFileEvent{Hdr: hdr(bpf.SensorEventKindKIND_FILE), Op: uint32(c.op), PathKind: uint16(bpf.SensorPathKindPATH_ABSOLUTE)}
			r.PathLen = setStr(r.Path[:], c.path)
			end := filePathOff + len(c.path) + 1
			if c.target != "" {
				r.Path2Kind = uint16(bpf.SensorPathKindPATH_ABSOLUTE)
				r.Path2Len = setStr(r.Path2[:], c.target)
				end = filePath2Off + len(c.target) + 1
			}
			whole := encode(t, &r)
			want, _, err := d.Decode(whole)
			if err != nil {
				t.Fatal(err)
			}
			// The long record first: its bytes must not reach the short one.
			if _, _, err := d.Decode(raw); err != nil {
				t.Fatal(err)
			}
			got, _, err := d.Decode(append([]byte(nil), whole[:end]...))
			if err != nil {
				t.Fatalf("trimmed to %d bytes: %v", end, err)
			}
			if got.Path != c.path || got.Target != c.target || got.Op != want.Op || got.Path != want.Path || got.Target != want.Target {
				t.Errorf("trimmed: path %q target %q op %q; whole: path %q target %q op %q",
					got.Path, got.Target, got.Op, want.Path, want.Target, want.Op)
			}
		})
	}

	bad := long
	bad.Path2Kind = uint16(bpf.SensorPathKindPATH_NONE)
	bad.PathLen = uint32(bpf.SensorAbiLimitPATH_LEN)
	if _, _, err := d.Decode(encode(t, &bad)); err == nil || !strings.Contains(err.Error(), "path length") {
		t.Errorf("path length past the array: err = %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(f, &bpf.SensorExecEvent{Hdr: hdr(bpf.SensorEventKindKIND_EXEC), ArgsLen: 5000, FilenameLen: 9999}))
	f.Add(encode(f, &bpf.SensorFileEvent{Hdr: hdr(bpf.SensorEventKindKIND_FILE), PathLen: 1 << 31, PathKind: 7, Path2Kind: 2}))
	f.Add(encode(f, &bpf.SensorBindEvent{Hdr: hdr(bpf.SensorEventKindKIND_BIND), Family: 2}))
	f.Add([]byte{1, 2, 3})
	trimmed := bpf.SensorFileEvent{Hdr: hdr(bpf.SensorEventKindKIND_FILE), PathKind: uint16(bpf.SensorPathKindPATH_RELATIVE), Dirfd: -100}
	trimmed.PathLen = setStr(trimmed.Path[:], "etc/hosts")
	f.Add(encode(f, &trimmed)[:filePathOff+int(trimmed.PathLen)+1])
	d := New(time.Unix(0, 0), fakeResolver{-100: "/"})
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, _, err := d.Decode(raw)
		if err != nil {
			return
		}
		// Lengths in a record are never trusted beyond their arrays.
		if len(e.Binary) > 256 || len(e.Path) > 1024 || len(e.Target) > 1024 {
			t.Fatalf("decoded field past its array: %+v", e)
		}
		// A trimmed file record means what the whole struct with a zero
		// tail means.
		if h, _ := view[bpf.SensorEventHdr](raw, hdrSize); h.Kind == uint16(bpf.SensorEventKindKIND_FILE) && len(raw) < fileSize {
			padded := append(append([]byte(nil), raw...), make([]byte, fileSize-len(raw))...)
			whole, _, err := d.Decode(padded)
			if err != nil || !reflect.DeepEqual(e, whole) {
				t.Fatalf("trimmed record: %+v; padded: %+v, %v", e, whole, err)
			}
		}
	})
}

func BenchmarkDecodeFile(b *testing.B) {
	d := New(time.Now(), nil)
	r := bpf.SensorFileEvent{Hdr: hdr(bpf.SensorEventKindKIND_FILE), Op: uint32(bpf.SensorFileOpFILE_OP_OPEN), PathKind: uint16(bpf.SensorPathKindPATH_ABSOLUTE)}
	r.PathLen = setStr(r.Path[:], "/var/lib/app/data/file.db")
	raw := encode(b, &r)
	// As the kernel writes it: up to the path's NUL.
	trimmed := raw[:filePathOff+int(r.PathLen)+1]
	for _, c := range []struct {
		name string
		raw  []byte
	}{{"whole", raw}, {"trimmed", trimmed}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := d.Decode(c.raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestEveryOpNamed: every operation the kernel's enum has gets a name, so
// that a new one is never reported as op_N.
func TestEveryOpNamed(t *testing.T) {
	seen := map[string]bool{}
	for op := bpf.SensorFileOpFILE_OP_OPEN; op <= bpf.SensorFileOpFILE_OP_FILEATTR; op++ {
		name := OpName(op)
		if strings.HasPrefix(name, "op_") || seen[name] {
			t.Errorf("op %d: name %q", op, name)
		}
		seen[name] = true
	}
	if got := OpName(bpf.SensorFileOpFILE_OP_FILEATTR + 1); got != fmt.Sprintf("op_%d", bpf.SensorFileOpFILE_OP_FILEATTR+1) {
		t.Errorf("an unknown op: %q", got)
	}
}
