// Package event is the sensor's event model: what every hook reports, with
// the stable JSON field names that sinks, the store and the CLI share.
package event

import "time"

// Kind says what happened.
type Kind string

// The event kinds.
const (
	KindExec      Kind = "exec"
	KindExit      Kind = "exit"
	KindFile      Kind = "file"
	KindBind      Kind = "bind"
	KindViolation Kind = "violation"
	KindContainer Kind = "container"
	KindPosture   Kind = "posture"
	KindSensor    Kind = "sensor"
	KindSyscalls  Kind = "syscalls"
)

// Verdict is what the sensor did about an event.
type Verdict string

// The verdicts.
const (
	VerdictAllow Verdict = "allow"
	VerdictDeny  Verdict = "deny"
	VerdictAudit Verdict = "audit"
)

// Kinds lists every kind, in the order the store numbers them (append only).
func Kinds() []Kind {
	return []Kind{KindExec, KindExit, KindFile, KindBind, KindViolation, KindContainer, KindPosture, KindSensor, KindSyscalls}
}

// Container identifies the container of the acting process.
type Container struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Image string `json:"image,omitempty"`
	Pod   string `json:"pod,omitempty"`
	// PodNamespace is the Kubernetes namespace of the pod; the contract
	// calls it "namespace".
	PodNamespace string `json:"namespace,omitempty"`
}

// FileID names a file as an object: its filesystem's device (the
// kernel's encoding) and its inode; Memfd marks an anonymous memory file.
type FileID struct {
	Dev   uint32
	Ino   uint64
	Memfd bool
}

// HoldRuntime is the HoldOutcome of the container runtime re-executing
// itself ("runc init") in a new container's cgroup: not held.
const HoldRuntime = "runtime"

// Event is one observation. Fields that do not apply to a kind stay empty and
// are left out of the JSON form.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    Kind      `json:"kind"`
	Verdict Verdict   `json:"verdict,omitempty"`
	// Source is the kernel mechanism that saw it: lsm, tracepoint or cgroup.
	Source string `json:"source,omitempty"`
	// Offline marks an event the kernel recorded while no daemon read its
	// ring (the daemon was restarting, upgrading, or down): it was read
	// when the next daemon started.
	Offline bool `json:"offline,omitempty"`

	PID       uint32     `json:"pid,omitempty"`
	TID       uint32     `json:"tid,omitempty"`
	PPID      uint32     `json:"ppid,omitempty"`
	UID       uint32     `json:"uid"`
	GID       uint32     `json:"gid"`
	Comm      string     `json:"comm,omitempty"`
	CgroupID  uint64     `json:"cgroup_id,omitempty"`
	Container *Container `json:"container,omitempty"`

	// exec, exit
	Binary        string   `json:"binary,omitempty"`
	Args          []string `json:"args,omitempty"`
	ArgsTruncated bool     `json:"args_truncated,omitempty"`
	// HoldOutcome is set on the first exec of a container, which the kernel
	// stopped before its first instruction: "released" once the container
	// was classified, "timeout" when classification took too long; and
	// HoldRuntime on the runtime's own re-exec in a new container, which
	// runs on unheld.
	HoldOutcome string `json:"hold_outcome,omitempty"`
	// Held is true while the event is waiting on that classification.
	Held bool `json:"-"`
	// Exe is the executed file as an object (device and inode; memfd for
	// an anonymous memory file): how the runtime's own re-exec is told
	// from the container's code.
	Exe FileID `json:"-"`
	// Pending is true when the kernel saw the cgroup as a container not yet
	// classified: such events wait for the container's identity.
	Pending bool `json:"-"`
	// ExitCode is an exit's status, as a shell gives it (exit(1): 1); it
	// is absent when a signal ended the process, which Signal names then.
	ExitCode *int32 `json:"exit_code,omitempty"`
	// Signal is the signal that ended the process (9 for SIGKILL), and
	// CoreDumped whether it dumped core.
	Signal     int32 `json:"signal,omitempty"`
	CoreDumped bool  `json:"core_dumped,omitempty"`

	// file
	Path string `json:"path,omitempty"`
	Op   string `json:"op,omitempty"`
	// Target is the second path of rename (new name), link (existing file)
	// and symlink (link contents).
	Target string `json:"target,omitempty"`
	// PathScope is empty for a path as the process sees it, "filesystem"
	// for one relative to its filesystem's root, "unresolved" for a
	// relative path or descriptor that could not be resolved, and
	// "file-handle" for a file opened by handle (open_by_handle_at), whose
	// path is then where the handle's filesystem is mounted, and
	// "truncated" when the kernel cut the path short (or could not place
	// it: a detached mount, a disconnected dentry): its first bytes or
	// deepest names, no object for certain.
	PathScope string `json:"path_scope,omitempty"`
	// TargetScope is the target's, as PathScope is the path's.
	TargetScope string  `json:"target_scope,omitempty"`
	Flags       uint32  `json:"flags,omitempty"`
	FileMode    uint32  `json:"file_mode,omitempty"`
	OwnerUID    *uint32 `json:"owner_uid,omitempty"`
	OwnerGID    *uint32 `json:"owner_gid,omitempty"`

	// bind
	Family string `json:"family,omitempty"`
	Addr   string `json:"addr,omitempty"`
	Port   uint16 `json:"port,omitempty"`
	Proto  string `json:"proto,omitempty"`

	// Device is the interface of a bind_device violation.
	Device string `json:"device,omitempty"`

	// Severity is a posture finding's (high, medium, low).
	Severity string `json:"severity,omitempty"`

	// violation; posture uses Rule (the CIS check) and Reason
	Policy string `json:"policy,omitempty"`
	Rule   string `json:"rule,omitempty"`
	Mode   string `json:"mode,omitempty"`
	Reason string `json:"reason,omitempty"`
	// ObjectContainer names, on a violation of the read-only rule, the
	// container whose root filesystem was written, when that is not the
	// acting process's own (through /proc/<pid>/root, a shared mount...);
	// ObjectCgroupID is its cgroup.
	ObjectCgroupID  uint64     `json:"object_cgroup_id,omitempty"`
	ObjectContainer *Container `json:"object_container,omitempty"`
	// Suppressed counts the identical violations (same container, rule
	// and policy) not reported one by one since the previous report: the
	// kernel rate-limits their reports, never the decision.
	Suppressed uint64 `json:"suppressed,omitempty"`

	// sensor, syscalls
	Message string            `json:"message,omitempty"`
	Counts  map[string]uint64 `json:"counts,omitempty"`
}

// LossMessage is the message of a loss report.
const LossMessage = "events lost"

// LossReport returns the sensor event that reports events lost, counted
// by cause (ring_full_file, store_write_error...). Its time is left for the
// caller to set. A loss report concerns every reader of the events, whatever
// they select: see IsLossReport.
func LossReport(counts map[string]uint64) Event {
	return Event{Kind: KindSensor, Verdict: VerdictAllow, Message: LossMessage, Counts: counts}
}

// IsLossReport reports whether e is a loss report (made by LossReport): a
// sensor event of no container with the loss message.
func (e *Event) IsLossReport() bool {
	return e.Kind == KindSensor && e.Container == nil && e.Message == LossMessage
}

// ViolationCount is how many violations a violation event stands for:
// itself and the identical ones suppressed before it, or, for a report of
// suppressed violations only (one with a Message), those.
func (e *Event) ViolationCount() uint64 {
	if e.Message != "" {
		return e.Suppressed
	}
	return 1 + e.Suppressed
}

// MarshalLine returns e's JSON encoding as the sinks share it: one object,
// HTML characters unescaped, no trailing newline (see AppendLine).
func (e *Event) MarshalLine() ([]byte, error) {
	return e.AppendLine(nil)
}
