package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor/api"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/store"
)

const defaultStore = "/var/lib/ringfence/events"

type eventsFlags struct {
	q        store.Query
	storeDir string
	socket   string
	follow   bool
	output   string
}

// parseTime accepts a duration before now (15m, 2h) or an RFC 3339 time.
func parseTime(flagName, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%s: %q: a duration before now must be positive", flagName, s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %q is neither a duration (15m) nor an RFC 3339 time (2026-11-28T10:02:00Z)", flagName, s)
	}
	return t, nil
}

func parseEventsFlags(args []string, stderr io.Writer, now time.Time) (*eventsFlags, error) {
	f := &eventsFlags{}
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.storeDir, "store", defaultStore, "event store directory (read-only; safe while the daemon writes)")
	fs.StringVar(&f.socket, "api-socket", api.DefaultSocket, "daemon socket, for --follow")
	fs.StringVar(&f.q.Container, "container", "", "container `ID|NAME` (an id prefix works)")
	fs.StringVar(&f.q.Pod, "pod", "", "Kubernetes pod name")
	fs.StringVar(&f.q.PodNamespace, "namespace", "", "Kubernetes namespace")
	fs.StringVar(&f.q.Image, "image", "", "image reference, or a glob (registry.internal/web/*)")
	kinds := fs.String("kind", "", "event kinds, comma-separated: exec,exit,file,bind,violation,container,posture,sensor,syscalls")
	verdicts := fs.String("verdict", "", "verdicts, comma-separated: allow,deny,audit")
	since := fs.String("since", "", "from this time: a duration before now (15m) or RFC 3339")
	until := fs.String("until", "", "up to this time (exclusive): a duration before now or RFC 3339")
	fs.IntVar(&f.q.Limit, "limit", 0, "at most N events, the oldest first (0: all)")
	fs.BoolVar(&f.follow, "follow", false, "after the stored events, print live ones from the daemon until interrupted")
	fs.StringVar(&f.output, "o", "table", "output: table or json (one event per line)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if f.output != "table" && f.output != "json" {
		return nil, fmt.Errorf("-o: %q is not table or json", f.output)
	}
	if f.q.Limit < 0 {
		return nil, fmt.Errorf("--limit: %d is negative", f.q.Limit)
	}
	if f.q.Since, err = parseTime("--since", *since, now); err != nil {
		return nil, err
	}
	if f.q.Until, err = parseTime("--until", *until, now); err != nil {
		return nil, err
	}
	if !f.q.Since.IsZero() && !f.q.Until.IsZero() && !f.q.Since.Before(f.q.Until) {
		return nil, fmt.Errorf("--since %s is not before --until %s", *since, *until)
	}
	valid := map[string]bool{}
	for _, k := range event.Kinds() {
		valid[string(k)] = true
	}
	for _, k := range splitComma(*kinds) {
		if !valid[k] {
			return nil, fmt.Errorf("--kind: unknown kind %q", k)
		}
		f.q.Kinds = append(f.q.Kinds, event.Kind(k))
	}
	for _, v := range splitComma(*verdicts) {
		if v != "allow" && v != "deny" && v != "audit" {
			return nil, fmt.Errorf("--verdict: unknown verdict %q", v)
		}
		f.q.Verdicts = append(f.q.Verdicts, event.Verdict(v))
	}
	return f, nil
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func eventsCmd(args []string, stdout, stderr io.Writer) int {
	f, err := parseEventsFlags(args, stderr, time.Now())
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "ringfence events: %v\n", err)
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := runEvents(ctx, f, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "ringfence events: %v\n", err)
		return 1
	}
	return 0
}

// runEvents prints the stored events, then with --follow the live ones
// until ctx ends or the daemon goes.
func runEvents(ctx context.Context, f *eventsFlags, stdout, stderr io.Writer) error {
	p := newPrinter(stdout, f.output)
	defer p.flush()

	var lines chan []byte
	streamErr := make(chan error, 1)
	if f.follow {
		// Subscribe before reading the store, so nothing falls in between.
		lines = make(chan []byte, 4096)
		go func() {
			streamErr <- api.NewClient(f.socket).Stream(ctx, f.q, func(b []byte) error {
				lines <- append([]byte(nil), b...)
				return nil
			})
			close(lines)
		}()
	}
	var last time.Time
	if _, err := os.Stat(f.storeDir); err == nil || !f.follow {
		rd, err := store.OpenReader(f.storeDir)
		if err != nil {
			return fmt.Errorf("--store: %w", err)
		}
		defer rd.Close()
		res, err := rd.Query(f.q)
		if err != nil {
			return err
		}
		for _, m := range res.Events {
			p.print(m.JSON)
			last = m.Time
		}
		warnLost(stderr, res.Lost, res.Truncated)
	}
	if !f.follow {
		return nil
	}
	p.flush()
	printLive(lines, &f.q, last, p, stderr)
	if err := <-streamErr; err != nil {
		return fmt.Errorf("--follow: %w", err)
	}
	return nil
}

// printLive prints the followed events newer than last. A loss report,
// which the daemon sends whatever the filter, is a warning on stderr, and
// an event on stdout only if the query selects it.
func printLive(lines <-chan []byte, q *store.Query, last time.Time, p *printer, stderr io.Writer) {
	for b := range lines {
		var ev event.Event
		if json.Unmarshal(b, &ev) == nil && !ev.Time.After(last) {
			continue // already printed from the store
		}
		if ev.IsLossReport() {
			p.flush()
			if total, causes := lossSummary(ev.Counts); total > 0 {
				fmt.Fprintf(stderr, "warning: %d events were lost at %s (%s): the live stream may be incomplete\n", total, ev.Time.Format(time.RFC3339), causes)
			}
			if !q.Matches(&ev) {
				continue
			}
		}
		p.print(b)
		p.flush()
	}
}

func warnLost(w io.Writer, lost map[string]uint64, truncated bool) {
	if total, causes := lossSummary(lost); total > 0 {
		fmt.Fprintf(w, "warning: %d events were lost in this window (%s): the answer may be incomplete\n", total, causes)
	}
	if truncated {
		fmt.Fprintln(w, "note: --limit cut the answer short")
	}
}

// lossSummary totals loss counts and lists them by cause: "a=1, b=2".
func lossSummary(lost map[string]uint64) (uint64, string) {
	var total uint64
	var parts []string
	for k, v := range lost {
		if v > 0 {
			total += v
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		}
	}
	sort.Strings(parts)
	return total, strings.Join(parts, ", ")
}

// printer writes events as JSON lines or a table.
type printer struct {
	w     *bufio.Writer // flushed by flush: one write per screenful, not per event
	tw    *tabwriter.Writer
	json  bool
	wrote bool
}

func newPrinter(w io.Writer, output string) *printer {
	bw := bufio.NewWriterSize(w, 64<<10)
	return &printer{w: bw, tw: tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0), json: output == "json"}
}

func (p *printer) print(raw []byte) {
	if p.json {
		p.w.Write(raw)
		p.w.WriteByte('\n')
		return
	}
	var e event.Event
	if err := json.Unmarshal(raw, &e); err != nil {
		return
	}
	if !p.wrote {
		fmt.Fprintln(p.tw, "TIME\tKIND\tVERDICT\tCONTAINER\tPID\tCOMM\tDETAIL")
		p.wrote = true
	}
	ctr := "-"
	if e.Container != nil {
		ctr = e.Container.Name
		if ctr == "" {
			ctr = e.Container.ID
		}
	}
	fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.Time.Local().Format("2006-01-02T15:04:05.000"), e.Kind, e.Verdict, ctr, e.PID, e.Comm, detail(&e))
}

func (p *printer) flush() {
	p.tw.Flush()
	p.w.Flush()
}

// detail is the one-line summary of what an event is about.
func detail(e *event.Event) string {
	switch e.Kind {
	case event.KindExec:
		return e.Binary + " " + strings.Join(e.Args, " ")
	case event.KindExit:
		return exitDetail(e)
	case event.KindSyscalls:
		return topSyscalls(e.Counts, topSyscallsShown)
	case event.KindFile:
		s := e.Op + " " + e.Path
		if e.Target != "" {
			s += " -> " + e.Target
		}
		return s
	case event.KindBind:
		return fmt.Sprintf("%s %s port %d", e.Proto, e.Addr, e.Port)
	case event.KindViolation:
		s := fmt.Sprintf("%s/%s (%s): %s", e.Policy, e.Rule, e.Mode, e.Reason)
		if obj := violationObject(e); obj != "" {
			s += ": " + obj
		}
		if e.Suppressed > 0 {
			s += fmt.Sprintf(" (+%d identical, not reported one by one)", e.Suppressed)
		}
		return s
	case event.KindPosture:
		return fmt.Sprintf("CIS %s (%s): %s: %s", strings.TrimPrefix(e.Rule, "cis-"), e.Severity, e.Message, e.Reason)
	}
	if len(e.Counts) > 0 {
		b, _ := json.Marshal(e.Counts)
		return strings.TrimSpace(e.Message + " " + string(b))
	}
	if e.Message != "" {
		return e.Message
	}
	return ""
}

// exitDetail says how a process ended: its exit status, or the signal
// that killed it.
func exitDetail(e *event.Event) string {
	switch {
	case e.ExitCode != nil:
		return fmt.Sprintf("exit code %d", *e.ExitCode)
	case e.Signal != 0:
		s := fmt.Sprintf("killed by signal %d", e.Signal)
		if name := unix.SignalName(syscall.Signal(e.Signal)); name != "" {
			s += " (" + name + ")"
		}
		if e.CoreDumped {
			s += ", core dumped"
		}
		return s
	}
	return ""
}

// topSyscallsShown is how many syscalls a table row names.
const topSyscallsShown = 5

// topSyscalls names the n most frequent syscalls of counts with their
// counts, most frequent first (ties by name), and how many more there are.
func topSyscalls(counts map[string]uint64, n int) string {
	if len(counts) == 0 {
		return "no syscalls"
	}
	names := make([]string, 0, len(counts))
	var total uint64
	for name, c := range counts {
		names = append(names, name)
		total += c
	}
	sort.Slice(names, func(i, j int) bool {
		if counts[names[i]] != counts[names[j]] {
			return counts[names[i]] > counts[names[j]]
		}
		return names[i] < names[j]
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%d syscalls:", total)
	for i, name := range names {
		if i == n {
			fmt.Fprintf(&b, " (+%d more)", len(names)-n)
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, " %s %d", name, counts[name])
	}
	return b.String()
}

// violationObject names what a violation was about: a file, an address, a
// device or an executable.
func violationObject(e *event.Event) string {
	switch {
	case e.Device != "":
		return e.Op + " " + e.Device
	case e.Addr != "":
		return fmt.Sprintf("%s %s %s port %d", e.Op, e.Proto, e.Addr, e.Port)
	case e.Path != "":
		s := e.Op + " " + e.Path
		if e.Target != "" {
			s += " -> " + e.Target
		}
		return s
	case e.Binary != "":
		return "exec " + e.Binary
	}
	return ""
}
