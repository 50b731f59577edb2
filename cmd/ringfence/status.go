package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/ringfence/ringfence/sensor/kernel"
	"github.com/ringfence/ringfence/sensor/status"
)

func statusCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("status-file", status.DefaultPath, "status published by the running daemon")
	output := fs.String("o", "table", "output format: table or json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *output != "table" && *output != "json" {
		fmt.Fprintf(stderr, "ringfence status: -o: %q is not table or json\n", *output)
		return 2
	}
	snap, err := status.Read(*path)
	running := err == nil && snap.Running()
	if !running {
		// No daemon: say what this kernel offers, from a fresh probe.
		p, perr := kernel.ProbeTier()
		if perr != nil {
			fmt.Fprintf(stderr, "ringfence status: no daemon running, and the probe failed: %v\n", perr)
			return 1
		}
		snap = &status.Snapshot{Tier: string(p.Tier), TierReason: p.Reason, ActiveLSMs: p.ActiveLSMs}
		for _, c := range kernel.Capabilities(p.Tier, p.Reason) {
			snap.Capabilities = append(snap.Capabilities, status.Capability(c))
		}
	}
	if *output == "json" {
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
		fmt.Fprintf(tw, "daemon:\trunning (pid %d, %s, since %s)\n", s.PID, s.Version, s.Started.Format("2006-01-02T15:04:05Z07:00"))
	} else {
		fmt.Fprintf(tw, "daemon:\tnot running (showing a fresh kernel probe)\n")
	}
	fmt.Fprintf(tw, "tier:\t%s\n", s.Tier)
	fmt.Fprintf(tw, "reason:\t%s\n", s.TierReason)
	fmt.Fprintf(tw, "active LSMs:\t%v\n", s.ActiveLSMs)
	if running {
		fmt.Fprintf(tw, "watched cgroups:\t%d\n", s.Watched)
	}
	fmt.Fprintln(tw, "\nRULE\tENFORCEABLE\tDETAIL")
	for _, c := range s.Capabilities {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Rule, yesNo(c.Enforceable), c.Detail)
	}
	if !running {
		return
	}
	fmt.Fprintln(tw, "\nHOOK\tPROGRAM\tATTACHED")
	for _, h := range s.Hooks {
		att := "yes"
		if !h.Attached {
			att = "no: " + h.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", h.Hook, h.Program, att)
	}
	fmt.Fprintln(tw, "\nLOST (cause)\tCOUNT")
	for _, k := range sortedKeys(s.Lost) {
		fmt.Fprintf(tw, "%s\t%d\n", k, s.Lost[k])
	}
	fmt.Fprintln(tw, "\nEVENTS (kind/verdict)\tCOUNT")
	for _, k := range sortedKeys(s.Events) {
		fmt.Fprintf(tw, "%s\t%d\n", k, s.Events[k])
	}
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
