package posture

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ringfence/ringfence/sensor/event"
)

// Report is the posture of one container.
type Report struct {
	// Container names the container as events do.
	Container event.Container `json:"container"`
	// Findings are the checks it fails, as Evaluate returns them.
	Findings []Finding `json:"findings"`
}

// WriteTable writes reports as an aligned text table, one row per finding
// and one for each container that passes every check. It returns the first
// write error.
func WriteTable(w io.Writer, reports []Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTAINER\tCHECK\tSEVERITY\tTITLE\tDETAIL")
	for _, r := range reports {
		name := r.Container.Name
		if name == "" {
			name = r.Container.ID
		}
		if len(r.Findings) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\tpasses all %d checks\t-\n", cell(name), len(rules))
		}
		for _, f := range r.Findings {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cell(name), cell(f.Check), cell(f.Severity), cell(f.Title), cell(f.Detail))
		}
	}
	return tw.Flush()
}

// cell keeps tabs and newlines in s, which come from paths in a spec, from
// breaking the table's columns and rows.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// WriteJSON writes reports as JSON lines, one object per report, HTML
// characters unescaped, as the sensor's other JSON output. It returns the
// first write error.
func WriteJSON(w io.Writer, reports []Report) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for _, r := range reports {
		if r.Findings == nil {
			r.Findings = []Finding{}
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// Events reports each CIS finding of a container's spec as a posture event
// at now: c names the container, cgroup and pid are its cgroup and init.
func (o Options) Events(c *event.Container, cgroup uint64, pid uint32, spec *specs.Spec, now time.Time) []event.Event {
	var out []event.Event
	for _, f := range o.Evaluate(spec) {
		out = append(out, event.Event{Time: now, Kind: event.KindPosture, CgroupID: cgroup, Container: c, PID: pid,
			Rule: "cis-" + f.Check, Severity: f.Severity, Message: f.Title, Reason: f.Detail})
	}
	return out
}
