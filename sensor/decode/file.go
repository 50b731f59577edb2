package decode

import (
	"fmt"
	"path"
	"strconv"

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
	}
	return fmt.Sprintf("op_%d", op)
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
			e.Target, _ = d.path(e.PID, kind, r.Dirfd2, target)
		}
	}
}

// path resolves one path field and says how far it could.
func (d *Decoder) path(pid uint32, kind bpf.SensorPathKind, dirfd int32, p string) (string, string) {
	switch kind {
	case bpf.SensorPathKindPATH_ABSOLUTE:
		return p, ""
	case bpf.SensorPathKindPATH_FS:
		return p, "filesystem"
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
