// Package status is the daemon's self-description: the capability tier, the
// hooks attached, what each rule can and cannot enforce here, the store, and
// the loss counters. The daemon serves it on its API socket.
package status

import (
	"time"

	"github.com/ringfence/ringfence/enforce"
)

// Hook is one program and whether it is attached.
type Hook struct {
	Program  string `json:"program"`
	Hook     string `json:"hook"`
	Attached bool   `json:"attached"`
	Error    string `json:"error,omitempty"`
}

// Capability says whether one rule is enforceable on this node, and how or why not.
type Capability struct {
	Rule        string `json:"rule"`
	Enforceable bool   `json:"enforceable"`
	Detail      string `json:"detail"`
}

// Pinned describes the kernel state pinned in bpffs: what survives the
// daemon. Layout and Programs are this daemon's; the Found fields what the
// pins said when it started.
type Pinned struct {
	Dir           string `json:"dir,omitempty"`
	State         string `json:"state"`
	Layout        string `json:"layout"`
	Programs      string `json:"programs"`
	Generation    uint64 `json:"generation"`
	FoundVersion  string `json:"found_version,omitempty"`
	FoundLayout   string `json:"found_layout,omitempty"`
	FoundPrograms string `json:"found_programs,omitempty"`
}

// Store describes the embedded event store.
type Store struct {
	Path     string `json:"path"`
	Segments int    `json:"segments"`
	Bytes    int64  `json:"bytes"`
	Events   uint64 `json:"events_written"`
}

// Runtime is the container runtime connection.
type Runtime struct {
	Socket     string `json:"socket"`
	Connected  bool   `json:"connected"`
	Version    string `json:"version,omitempty"`
	Reconnects int    `json:"reconnects"`
	LastError  string `json:"last_error,omitempty"`
}

// Snapshot is the daemon's status at one instant.
type Snapshot struct {
	PID          int          `json:"pid"`
	Version      string       `json:"version"`
	Started      time.Time    `json:"started"`
	Ready        bool         `json:"ready"`
	Tier         string       `json:"tier"`
	TierReason   string       `json:"tier_reason"`
	ActiveLSMs   []string     `json:"active_lsms"`
	Hooks        []Hook       `json:"hooks"`
	Capabilities []Capability `json:"capabilities"`
	Watched      int          `json:"watched_cgroups"`
	// Holds counts the outcomes of holding containers' first execs.
	Holds map[string]uint64 `json:"holds,omitempty"`
	// Unapplied lists, by cgroup id, the containers held before their
	// first instruction because their policies could not be applied, with
	// why (fail closed).
	Unapplied map[uint64]string `json:"unapplied,omitempty"`
	// KernelMaps counts the entries of the kernel maps that follow
	// containers and cgroups, by map name.
	KernelMaps map[string]int `json:"kernel_maps,omitempty"`
	// Pinned says what of the kernel state is pinned; nil when nothing is.
	Pinned *Pinned `json:"pinned,omitempty"`
	// KernelViolations counts the violations by rule and action, as the
	// kernel counted them (while no daemon ran too).
	KernelViolations map[string]uint64 `json:"kernel_violations,omitempty"`
	// KernelMapCapacity is the capacity of each of those maps.
	KernelMapCapacity map[string]int `json:"kernel_map_capacity,omitempty"`
	// Untracked counts the identical-violation counts the daemon could not
	// remember (its table full): a later report may repeat some.
	Untracked uint64 `json:"violation_counts_untracked"`
	// SyscallCounters is the number of (cgroup, syscall) counters in the kernel.
	SyscallCounters int               `json:"syscall_counters"`
	Containers      int               `json:"containers"`
	Runtime         *Runtime          `json:"runtime,omitempty"`
	Store           *Store            `json:"store,omitempty"`
	Events          map[string]uint64 `json:"events"`
	Lost            map[string]uint64 `json:"lost"`
	// Stalls counts, by stage, the waits of one pipeline stage for the next.
	Stalls map[string]uint64 `json:"stalls"`
	// SinkDropped counts, by cause, the events one sink dropped while the
	// others wrote them: JSON lines on stdout whose reader fell behind
	// (stdout_behind) or that gave way to the store while the kernel ring
	// was filling (stdout_yielded). The store has them; they are not in
	// Lost.
	SinkDropped map[string]uint64 `json:"sink_dropped,omitempty"`
	// Policy is the policy set in force and the last refused one's problems.
	Policy *enforce.Status `json:"policy,omitempty"`
	// Violations counts violations by "policy/rule/mode", rate-limited
	// ones included.
	Violations map[string]uint64 `json:"violations,omitempty"`
}
