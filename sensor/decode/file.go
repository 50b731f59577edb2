package decode

import (
	"fmt"
	"path"
	"strconv"
	"unsafe"

	"github.com/ringfence/ringfence/bpf"
	"github.com/ringfence/ringfence/sensor/event"
)

// OpName returns the event's op name of a kernel file operation.
func OpName(op bpf.SensorFileOp) string {
	switch op {
	case bpf.SensorFileOpFILE_OP_OPEN:
		return "open"
	case bpf.SensorFileOpFILE_OP_CREATE:
		return "create"
	case bpf.SensorFileOpFILE_OP_TRUNCATE:
		return "truncate"
	case bpf.SensorFileOpFILE_OP_UNLINK:
		return "unlink"
	case bpf.SensorFileOpFILE_OP_RENAME:
		return "rename"
	case bpf.SensorFileOpFILE_OP_LINK:
		return "link"
	case bpf.SensorFileOpFILE_OP_SYMLINK:
		return "symlink"
	case bpf.SensorFileOpFILE_OP_MKDIR:
		return "mkdir"
	case bpf.SensorFileOpFILE_OP_RMDIR:
		return "rmdir"
	case bpf.SensorFileOpFILE_OP_MKNOD:
		return "mknod"
	case bpf.SensorFileOpFILE_OP_CHMOD:
		return "chmod"
	case bpf.SensorFileOpFILE_OP_CHOWN:
		return "chown"
	case bpf.SensorFileOpFILE_OP_SETXATTR:
		return "setxattr"
	case bpf.SensorFileOpFILE_OP_REMOVEXATTR:
		return "removexattr"
	case bpf.SensorFileOpFILE_OP_UTIMES:
		return "utimes"
	case bpf.SensorFileOpFILE_OP_FALLOCATE:
		return "fallocate"
	case bpf.SensorFileOpFILE_OP_IOCTL:
		return "ioctl"
	case bpf.SensorFileOpFILE_OP_FILEATTR:
		return "fileattr"
	}
	return fmt.Sprintf("op_%d", op)
}

var (
	filePathOff  = int(unsafe.Offsetof(bpf.SensorFileEvent{}.Path))
	filePath2Off = int(unsafe.Offsetof(bpf.SensorFileEvent{}.Path2))
	pathMax      = uint32(bpf.SensorAbiLimitPATH_LEN) - 1
)

// fileRecord returns the file record in raw. The kernel writes a file
// record only up to the end of its last path and that path's NUL: a
// shorter record is copied into a zeroed one, and each length is checked
// against the bytes the record has. The result is valid until the next
// call.
func (d *Decoder) fileRecord(raw []byte) (*bpf.SensorFileEvent, error) {
	if len(raw) < filePathOff+1 {
		return nil, fmt.Errorf("%w: %d bytes, need %d", ErrShort, len(raw), filePathOff+1)
	}
	r := &d.short
	if len(raw) >= fileSize {
		var err error
		if r, err = view[bpf.SensorFileEvent](raw, fileSize); err != nil {
			return nil, err
		}
	} else {
		b := unsafe.Slice((*byte)(unsafe.Pointer(r)), unsafe.Sizeof(*r))
		clear(b[copy(b, raw):])
	}
	if r.PathLen > pathMax || r.Path2Len > pathMax {
		return nil, fmt.Errorf("path length %d/%d past %d", r.PathLen, r.Path2Len, pathMax)
	}
	need := filePathOff + int(r.PathLen) + 1
	if r.Path2Kind != uint16(bpf.SensorPathKindPATH_NONE) {
		need = filePath2Off + int(r.Path2Len) + 1
	}
	if len(raw) < need {
		return nil, fmt.Errorf("%w: %d bytes, its paths need %d", ErrShort, len(raw), need)
	}
	return r, nil
}

func (d *Decoder) fileFields(e *event.Event, r *bpf.SensorFileEvent) {
	e.Kind = event.KindFile
	e.Op = OpName(bpf.SensorFileOp(r.Op))
	e.Flags = r.Flags
	e.FileMode = r.Mode
	if r.Op == uint32(bpf.SensorFileOpFILE_OP_CHOWN) {
		uid, gid := r.OwnerUid, r.OwnerGid
		e.OwnerUID, e.OwnerGID = &uid, &gid
	}
	var scope string
	e.Path, scope = d.path(e.PID, bpf.SensorPathKind(r.PathKind), r.Dirfd, cString(r.Path[:], int(r.PathLen)))
	e.PathScope = scope
	if r.Path2Kind != uint16(bpf.SensorPathKindPATH_NONE) {
		kind := bpf.SensorPathKind(r.Path2Kind)
		target := cString(r.Path2[:], int(r.Path2Len))
		if r.Op == uint32(bpf.SensorFileOpFILE_OP_SYMLINK) {
			e.Target = target // a symlink's contents are not resolved
		} else {
			e.Target, e.TargetScope = d.path(e.PID, kind, r.Dirfd2, target)
		}
	}
}

// ScopeTruncated is the path_scope of an event a path of which the kernel
// cut short: deeper than its walk goes (32 names), longer than 511 bytes,
// or across more mounts than its walk takes steps. The path is the first
// bytes of the real one, or its deepest names, and names no object for
// certain.
const ScopeTruncated = "truncated"

// path resolves one path field and says how far it could.
func (d *Decoder) path(pid uint32, kind bpf.SensorPathKind, dirfd int32, p string) (string, string) {
	switch kind {
	case bpf.SensorPathKindPATH_ABSOLUTE:
		return p, ""
	case bpf.SensorPathKindPATH_FS:
		return p, "filesystem"
	case bpf.SensorPathKindPATH_TRUNCATED:
		return p, ScopeTruncated
	case bpf.SensorPathKindPATH_HANDLE:
		// open_by_handle_at names no path: p is where the handle's
		// filesystem is mounted (its mount_fd).
		if p == "" {
			p = "fd:" + strconv.Itoa(int(dirfd))
		}
		return p, "file-handle"
	case bpf.SensorPathKindPATH_FD:
		p = ""
	case bpf.SensorPathKindPATH_RELATIVE:
	default:
		return p, "unresolved"
	}
	if d.resolver != nil {
		if abs, ok := d.resolver.Resolve(pid, dirfd, p); ok {
			return abs, ""
		}
	}
	if kind == bpf.SensorPathKindPATH_FD || p == "" {
		return "fd:" + strconv.Itoa(int(dirfd)), "unresolved"
	}
	return p, "unresolved"
}

// ProcResolver resolves paths through /proc/PID/{cwd,fd/N} of a live process.
type ProcResolver struct {
	// Proc is the procfs mount point; empty means /proc.
	Proc     string
	readlink func(string) (string, error)
}

// NewProcResolver returns a resolver reading the given procfs.
func NewProcResolver(proc string, readlink func(string) (string, error)) *ProcResolver {
	if proc == "" {
		proc = "/proc"
	}
	return &ProcResolver{Proc: proc, readlink: readlink}
}

// Resolve implements Resolver.
func (r *ProcResolver) Resolve(pid uint32, dirfd int32, rel string) (string, bool) {
	base := path.Join(r.Proc, strconv.Itoa(int(pid)))
	if dirfd == -100 { // AT_FDCWD
		base = path.Join(base, "cwd")
	} else {
		base = path.Join(base, "fd", strconv.Itoa(int(dirfd)))
	}
	dir, err := r.readlink(base)
	if err != nil || !path.IsAbs(dir) {
		return "", false
	}
	if rel == "" {
		return dir, true
	}
	return path.Join(dir, rel), true
}
