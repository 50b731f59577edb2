// Package decode turns raw ring-buffer records into events, using the types
// bpf2go generated from the C definitions. Every record is length-checked
// before it is read; a malformed record is an error, never a panic.
package decode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unsafe"

	"github.com/ringfence/ringfence/bpf"
	"github.com/ringfence/ringfence/sensor/event"
)

// Resolver turns a path the process gave relative to a directory descriptor
// (AT_FDCWD for its cwd), or a bare descriptor, into an absolute path. It
// returns false when it cannot (the process is gone, say).
type Resolver interface {
	Resolve(pid uint32, dirfd int32, rel string) (string, bool)
}

// Decoder decodes records. It is not safe for concurrent use.
type Decoder struct {
	// bootWall is the wall-clock time of boot: event time = bootWall + ts.
	bootWall time.Time
	resolver Resolver
	// offlineBefore is the boot time before which records were written
	// while no daemon read the ring.
	offlineBefore uint64
	// comms holds one string per process name seen (at most maxComms),
	// shared by the events of that name.
	comms map[string]string
	// short holds a file record the kernel trimmed after its last path,
	// its missing tail zero.
	short bpf.SensorFileEvent
}

// maxComms bounds the process names a Decoder keeps; past it, it forgets
// them all and starts again.
const maxComms = 1024

// comm returns the process name in b, shared with the earlier events of
// that name rather than allocated for each.
func (d *Decoder) comm(b []int8) string {
	raw := cBytes(b, len(b))
	if s, ok := d.comms[string(raw)]; ok {
		return s
	}
	s := string(raw)
	if len(d.comms) >= maxComms {
		clear(d.comms)
	}
	d.comms[s] = s
	return s
}

// MarkOfflineBefore marks every record written before boot time t (since
// boot) as written while no daemon read the ring.
func (d *Decoder) MarkOfflineBefore(t time.Duration) { d.offlineBefore = uint64(t) }

// New returns a decoder. bootWall is the wall-clock time at which
// CLOCK_BOOTTIME was zero; resolver may be nil.
func New(bootWall time.Time, resolver Resolver) *Decoder {
	return &Decoder{bootWall: bootWall, resolver: resolver, comms: make(map[string]string)}
}

// ErrShort is wrapped by errors about records too short for their kind.
var ErrShort = errors.New("record too short")

var (
	hdrSize  = binary.Size(bpf.SensorEventHdr{})
	execSize = binary.Size(bpf.SensorExecEvent{})
	exitSize = binary.Size(bpf.SensorExitEvent{})
	fileSize = binary.Size(bpf.SensorFileEvent{})
	bindSize = binary.Size(bpf.SensorBindEvent{})
	violSize = binary.Size(bpf.SensorViolationEvent{})
)

// Decode decodes one record. For a violation record it also returns the
// kernel's verdict, typed; for others a zero Violation.
func (d *Decoder) Decode(raw []byte) (event.Event, Violation, error) {
	var v Violation
	h, err := view[bpf.SensorEventHdr](raw, hdrSize)
	if err != nil {
		return event.Event{}, v, fmt.Errorf("header: %w", err)
	}
	e := d.header(h)
	switch bpf.SensorEventKind(h.Kind) {
	case bpf.SensorEventKindKIND_EXEC:
		r, err := view[bpf.SensorExecEvent](raw, execSize)
		if err != nil {
			return e, v, fmt.Errorf("exec: %w", err)
		}
		execFields(&e, r)
	case bpf.SensorEventKindKIND_EXIT:
		r, err := view[bpf.SensorExitEvent](raw, exitSize)
		if err != nil {
			return e, v, fmt.Errorf("exit: %w", err)
		}
		exitFields(&e, r)
	case bpf.SensorEventKindKIND_FILE:
		r, err := d.fileRecord(raw)
		if err != nil {
			return e, v, fmt.Errorf("file: %w", err)
		}
		d.fileFields(&e, r)
	case bpf.SensorEventKindKIND_BIND:
		r, err := view[bpf.SensorBindEvent](raw, bindSize)
		if err != nil {
			return e, v, fmt.Errorf("bind: %w", err)
		}
		bindFields(&e, r)
	case bpf.SensorEventKindKIND_VIOLATION:
		r, err := view[bpf.SensorViolationEvent](raw, violSize)
		if err != nil {
			return e, v, fmt.Errorf("violation: %w", err)
		}
		v = d.violationFields(&e, r)
	default:
		return e, v, fmt.Errorf("unknown event kind %d", h.Kind)
	}
	return e, v, nil
}

// view returns the first size bytes of raw as a *T, whose Go layout
// bpf2go generated to match the C struct (structs.HostLayout; no Go
// pointers in it), after the length check: read in place, since copying
// kilobyte-long path arrays cost more than anything else in decoding. A
// record not aligned for T (the ring's are) is copied instead. The result
// is valid as long as raw is.
func view[T any](raw []byte, size int) (*T, error) {
	var zero T
	if len(raw) < size {
		return nil, fmt.Errorf("%w: %d bytes, need %d", ErrShort, len(raw), size)
	}
	if int(unsafe.Sizeof(zero)) != size {
		return nil, fmt.Errorf("record layout mismatch: Go %d bytes, C %d", unsafe.Sizeof(zero), size)
	}
	p := unsafe.Pointer(unsafe.SliceData(raw))
	if uintptr(p)%unsafe.Alignof(zero) != 0 {
		v := new(T)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(v)), size), raw[:size])
		return v, nil
	}
	return (*T)(p), nil
}

// BootNs returns the boot time (CLOCK_BOOTTIME, ns) at which the kernel
// wrote record raw, or false for a record too short to have a header.
func BootNs(raw []byte) (uint64, bool) {
	h, err := view[bpf.SensorEventHdr](raw, hdrSize)
	if err != nil {
		return 0, false
	}
	return h.TsBootNs, true
}

func (d *Decoder) header(h *bpf.SensorEventHdr) event.Event {
	return event.Event{
		Time:     d.bootWall.Add(time.Duration(h.TsBootNs)),
		Verdict:  event.VerdictAllow,
		Source:   sourceName(bpf.SensorEventSource(h.Source)),
		PID:      h.Pid,
		TID:      h.Tid,
		PPID:     h.Ppid,
		UID:      h.Uid,
		GID:      h.Gid,
		Comm:     d.comm(h.Comm[:]),
		CgroupID: h.CgroupId,
		Pending:  h.Pending != 0,
		Offline:  h.TsBootNs < d.offlineBefore,
	}
}

func execFields(e *event.Event, r *bpf.SensorExecEvent) {
	e.Kind = event.KindExec
	e.Binary = cString(r.Filename[:], int(r.FilenameLen))
	e.ArgsTruncated = r.ArgsTruncated != 0
	e.Held = r.Held != 0
	e.Exe = event.FileID{Dev: r.ExeDev, Ino: r.ExeIno, Memfd: r.ExeFlags&uint32(bpf.SensorExeFlagEXE_MEMFD) != 0}
	if r.ExeFlags&uint32(bpf.SensorExeFlagEXE_RUNTIME) != 0 {
		e.HoldOutcome = event.HoldRuntime // the kernel let it run
	}
	n := min(int(r.ArgsLen), len(r.Args))
	args := strings.TrimRight(string(int8Bytes(r.Args[:n])), "\x00")
	if args != "" {
		e.Args = strings.Split(args, "\x00")
	}
}

// exitFields splits the kernel's exit code (the task's exit_code, as
// wait(2) reports it) into the exit status, or the signal that ended the
// process and whether it dumped core.
func exitFields(e *event.Event, r *bpf.SensorExitEvent) {
	e.Kind = event.KindExit
	if sig := r.ExitCode & 0x7f; sig != 0 {
		e.Signal = sig
		e.CoreDumped = r.ExitCode&0x80 != 0
		return
	}
	status := r.ExitCode >> 8 & 0xff
	e.ExitCode = &status
}

func bindFields(e *event.Event, r *bpf.SensorBindEvent) {
	e.Kind = event.KindBind
	e.Port = r.Port
	switch r.Family {
	case 2: // stored IPv4-mapped, as every address in a record
		e.Family = "inet"
		e.Addr = netip.AddrFrom16(r.Addr).Unmap().String()
	case 10:
		e.Family = "inet6"
		e.Addr = netip.AddrFrom16(r.Addr).String()
	default:
		e.Family = fmt.Sprintf("af_%d", r.Family)
	}
	e.Proto = protoName(r.Protocol, r.Type)
}

func protoName(proto, sockType uint16) string {
	switch proto {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 132:
		return "sctp"
	case 0:
		switch sockType {
		case 1:
			return "tcp"
		case 2:
			return "udp"
		}
	}
	return fmt.Sprintf("ip_%d", proto)
}

func sourceName(s bpf.SensorEventSource) string {
	switch s {
	case bpf.SensorEventSourceSOURCE_LSM:
		return "lsm"
	case bpf.SensorEventSourceSOURCE_TRACEPOINT:
		return "tracepoint"
	case bpf.SensorEventSourceSOURCE_CGROUP:
		return "cgroup"
	}
	return ""
}

// cString returns the string in b, stopping at n bytes or the first NUL.
func cString(b []int8, n int) string {
	return string(cBytes(b, n))
}

// cBytes returns the bytes of b up to n or the first NUL, in place.
func cBytes(b []int8, n int) []byte {
	raw := int8Bytes(b[:max(0, min(n, len(b)))])
	if i := bytes.IndexByte(raw, 0); i >= 0 {
		raw = raw[:i]
	}
	return raw
}

// int8Bytes returns b as bytes, in place.
func int8Bytes(b []int8) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), len(b))
}
