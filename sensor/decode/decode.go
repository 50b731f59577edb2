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
}

// MarkOfflineBefore marks every record written before boot time t (since
// boot) as written while no daemon read the ring.
func (d *Decoder) MarkOfflineBefore(t time.Duration) { d.offlineBefore = uint64(t) }

// New returns a decoder. bootWall is the wall-clock time at which
// CLOCK_BOOTTIME was zero; resolver may be nil.
func New(bootWall time.Time, resolver Resolver) *Decoder {
	return &Decoder{bootWall: bootWall, resolver: resolver}
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
	var h bpf.SensorEventHdr
	if err := decodeSized(raw, hdrSize, &h); err != nil {
		return event.Event{}, Violation{}, fmt.Errorf("header: %w", err)
	}
	var v Violation
	e := d.header(&h)
	switch bpf.SensorEventKind(h.Kind) {
	case bpf.SensorEventKindKIND_EXEC:
		var r bpf.SensorExecEvent
		if err := decodeSized(raw, execSize, &r); err != nil {
			return e, v, fmt.Errorf("exec: %w", err)
		}
		execFields(&e, &r)
	case bpf.SensorEventKindKIND_EXIT:
		var r bpf.SensorExitEvent
		if err := decodeSized(raw, exitSize, &r); err != nil {
			return e, v, fmt.Errorf("exit: %w", err)
		}
		e.Kind = event.KindExit
		code := r.ExitCode
		e.ExitCode = &code
	case bpf.SensorEventKindKIND_FILE:
		var r bpf.SensorFileEvent
		if err := decodeSized(raw, fileSize, &r); err != nil {
			return e, v, fmt.Errorf("file: %w", err)
		}
		d.fileFields(&e, &r)
	case bpf.SensorEventKindKIND_BIND:
		var r bpf.SensorBindEvent
		if err := decodeSized(raw, bindSize, &r); err != nil {
			return e, v, fmt.Errorf("bind: %w", err)
		}
		bindFields(&e, &r)
	case bpf.SensorEventKindKIND_VIOLATION:
		var r bpf.SensorViolationEvent
		if err := decodeSized(raw, violSize, &r); err != nil {
			return e, v, fmt.Errorf("violation: %w", err)
		}
		v = d.violationFields(&e, &r)
	default:
		return e, v, fmt.Errorf("unknown event kind %d", h.Kind)
	}
	return e, v, nil
}

// decodeSized copies the first size bytes of raw over *v, whose Go layout
// bpf2go generated to match the C struct (structs.HostLayout). A plain copy
// after the length check: reflection-based decoding of the kilobyte-long
// path arrays cost more than everything else on the event path.
func decodeSized[T any](raw []byte, size int, v *T) error {
	if len(raw) < size {
		return fmt.Errorf("%w: %d bytes, need %d", ErrShort, len(raw), size)
	}
	if int(unsafe.Sizeof(*v)) != size {
		return fmt.Errorf("record layout mismatch: Go %d bytes, C %d", unsafe.Sizeof(*v), size)
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(v)), size), raw[:size])
	return nil
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
		Comm:     cString(h.Comm[:], len(h.Comm)),
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
	n = max(0, min(n, len(b)))
	raw := int8Bytes(b[:n])
	if i := bytes.IndexByte(raw, 0); i >= 0 {
		raw = raw[:i]
	}
	return string(raw)
}

func int8Bytes(b []int8) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = byte(c)
	}
	return out
}
