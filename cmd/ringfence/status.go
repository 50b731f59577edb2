package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringfence/ringfence/sensor/api"
	"github.com/ringfence/ringfence/sensor/kernel"
	"github.com/ringfence/ringfence/sensor/status"
)

func statusCmd(args []string, stdout, stderr io.Writer) int {
	socket, output, ok := clientFlags("status", args, stderr)
	if !ok {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	snap, err := api.NewClient(socket).Status(ctx)
	running := err == nil
	if !running {
		// No daemon: say what this kernel offers, from a fresh probe.
		p, perr := kernel.ProbeTier()
		if perr != nil {
			fmt.Fprintf(stderr, "ringfence status: no daemon at %s (%v), and the probe failed: %v\n", socket, err, perr)
			return 1
		}
		snap = &status.Snapshot{Tier: string(p.Tier), TierReason: p.Reason, ActiveLSMs: p.ActiveLSMs}
		for _, c := range kernel.Capabilities(p) {
			snap.Capabilities = append(snap.Capabilities, status.Capability(c))
		}
	}
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Running bool `json:"daemon_running"`
			*status.Snapshot
		}{running, snap}); err != nil {
			fmt.Fprintf(stderr, "ringfence status: %v\n", err)
			return 1
		}
		return 0
	}
	printStatus(stdout, snap, running)
	return 0
}

func printStatus(w io.Writer, s *status.Snapshot, running bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	if running {
		fmt.Fprintf(tw, "daemon:\trunning (pid %d, %s, since %s, ready %v)\n", s.PID, s.Version, s.Started.Format(time.RFC3339), s.Ready)
	} else {
		fmt.Fprintf(tw, "daemon:\tnot running (showing a fresh kernel probe)\n")
	}
	fmt.Fprintf(tw, "tier:\t%s\n", s.Tier)
	fmt.Fprintf(tw, "reason:\t%s\n", s.TierReason)
	fmt.Fprintf(tw, "active LSMs:\t%v\n", s.ActiveLSMs)
	if running {
		fmt.Fprintf(tw, "watched cgroups:\t%d\n", s.Watched)
		if r := s.Runtime; r != nil {
			state := "connected " + r.Version
			if !r.Connected {
				state = "disconnected: " + r.LastError
			}
			fmt.Fprintf(tw, "containerd:\t%s (%s; %d reconnects; %d containers)\n", r.Socket, state, r.Reconnects, s.Containers)
		}
		if s.Store != nil {
			fmt.Fprintf(tw, "store:\t%s (%d segments, %d bytes, %d events written)\n", s.Store.Path, s.Store.Segments, s.Store.Bytes, s.Store.Events)
		} else {
			fmt.Fprintf(tw, "store:\tnone\n")
		}
	}
	fmt.Fprintln(tw, "\nRULE\tENFORCEABLE\tDETAIL")
	for _, c := range s.Capabilities {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Rule, yesNo(c.Enforceable), c.Detail)
	}
	if !running {
		return
	}
	if p := s.Policy; p != nil {
		fmt.Fprintln(tw, "\nPOLICY\t")
		fmt.Fprintf(tw, "generation:\t%d (%d containers under a policy)\n", p.Generation, p.Enforced)
		if len(p.Sources) > 0 {
			fmt.Fprintf(tw, "files:\t%s\n", strings.Join(p.Sources, ", "))
		}
		fmt.Fprintf(tw, "policies:\t%s\n", orNone(strings.Join(p.Policies, ", ")))
		for _, r := range p.Rejected {
			fmt.Fprintf(tw, "refused:\t%s\n", r)
		}
	}
	if len(s.Violations) > 0 {
		fmt.Fprintln(tw, "\nVIOLATIONS (policy/rule/mode)\tCOUNT")
		for _, k := range sortedKeys(s.Violations) {
			fmt.Fprintf(tw, "%s\t%d\n", k, s.Violations[k])
		}
	}
	fmt.Fprintln(tw, "\nHOOK\tPROGRAM\tATTACHED")
	for _, h := range s.Hooks {
		att := "yes"
		if !h.Attached {
			att = "not attached: " + h.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", h.Hook, h.Program, att)
	}
	fmt.Fprintln(tw, "\nLOST (cause)\tCOUNT")
	for _, k := range sortedKeys(s.Lost) {
		fmt.Fprintf(tw, "%s\t%d\n", k, s.Lost[k])
	}
	if s.Holds != nil {
		fmt.Fprintln(tw, "\nCONTAINER HOLDS (outcome)\tCOUNT")
		for _, k := range sortedKeys(s.Holds) {
			fmt.Fprintf(tw, "%s\t%d\n", k, s.Holds[k])
		}
	}
	if p := s.Pinned; p != nil {
		fmt.Fprintf(tw, "\nPINNED (%s)\t%s\n", p.Dir, p.State)
		fmt.Fprintf(tw, "this daemon: layout %s, programs %s\tpolicy generation %d\n", p.Layout, p.Programs, p.Generation)
		if p.FoundLayout != "" {
			fmt.Fprintf(tw, "found at start: layout %s, programs %s\tloaded by %s\n", p.FoundLayout, p.FoundPrograms, p.FoundVersion)
		}
	}
	if len(s.Unapplied) > 0 {
		fmt.Fprintln(tw, "\nHELD: POLICIES NOT APPLIED (cgroup)\tWHY")
		ids := make([]uint64, 0, len(s.Unapplied))
		for id := range s.Unapplied {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			fmt.Fprintf(tw, "%d\t%s\n", id, s.Unapplied[id])
		}
	}
	fmt.Fprintln(tw, "\nSTALLS (stage waited)\tCOUNT")
	for _, k := range sortedKeys(s.Stalls) {
		fmt.Fprintf(tw, "%s\t%d\n", k, s.Stalls[k])
	}
	if len(s.SinkDropped) > 0 {
		fmt.Fprintln(tw, "\nDROPPED BY ONE SINK (cause; the store has them)\tCOUNT")
		for _, k := range sortedKeys(s.SinkDropped) {
			fmt.Fprintf(tw, "%s\t%d\n", k, s.SinkDropped[k])
		}
	}
	fmt.Fprintln(tw, "\nEVENTS (kind/verdict)\tCOUNT")
	for _, k := range sortedKeys(s.Events) {
		fmt.Fprintf(tw, "%s\t%d\n", k, s.Events[k])
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
