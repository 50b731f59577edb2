package main

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/ringfence/ringfence/sensor/status"
)

// TestStatusListsSkippedHooks prints a status whose optional hook was not
// loaded: it must be listed as not attached, with its reason, next to the
// attached ones.
func TestStatusListsSkippedHooks(t *testing.T) {
	snap := &status.Snapshot{
		Tier: "full",
		Hooks: []status.Hook{
			{Program: "rf_lsm_file_open", Hook: "lsm/file_open", Attached: true},
			{Program: "rf_lsm_inode_set_acl", Hook: "lsm/inode_set_acl", Error: "optional hook absent from this kernel (no bpf_lsm_inode_set_acl in its BTF; added in 6.2)"},
		},
	}
	var out bytes.Buffer
	printStatus(&out, snap, true)
	for _, re := range []string{
		`(?m)^lsm/file_open\s+rf_lsm_file_open\s+yes$`,
		`(?m)^lsm/inode_set_acl\s+rf_lsm_inode_set_acl\s+not attached: optional hook absent from this kernel \(no bpf_lsm_inode_set_acl in its BTF; added in 6\.2\)$`,
	} {
		if !regexp.MustCompile(re).Match(out.Bytes()) {
			t.Errorf("status output does not match %s:\n%s", re, out.String())
		}
	}
}
