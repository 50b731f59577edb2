// Package status is the daemon's self-description: the capability tier, the
// hooks attached, what each rule can and cannot enforce here, and the loss
// counters. The daemon publishes it as a file that `ringfence status` reads.
package status

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// DefaultPath is where the daemon publishes its status.
const DefaultPath = "/run/ringfence/status.json"

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

// Snapshot is the published status.
type Snapshot struct {
	PID          int               `json:"pid"`
	Version      string            `json:"version"`
	Started      time.Time         `json:"started"`
	Updated      time.Time         `json:"updated"`
	Tier         string            `json:"tier"`
	TierReason   string            `json:"tier_reason"`
	ActiveLSMs   []string          `json:"active_lsms"`
	Hooks        []Hook            `json:"hooks"`
	Capabilities []Capability      `json:"capabilities"`
	Watched      int               `json:"watched_cgroups"`
	Events       map[string]uint64 `json:"events"`
	Lost         map[string]uint64 `json:"lost"`
}

// Write publishes s at path atomically (readers never see half a file).
func Write(path string, s *Snapshot) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("status dir: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return os.Rename(tmp, path)
}

// Read loads a published status.
func Read(path string) (*Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

// Running reports whether the process that wrote s is still alive.
func (s *Snapshot) Running() bool {
	if s.PID <= 0 {
		return false
	}
	_, err := os.Stat(fmt.Sprintf("/proc/%d", s.PID))
	return err == nil
}
