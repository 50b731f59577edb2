package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/ringfence/ringfence/sensor/store"
)

type config struct {
	events      int
	smallEvents int
	dir         string
	ringfence   string
	queries     int
	skipJQ      bool
	// parts are the parts of the bench to run: pipeline, queries, memory.
	parts map[string]bool
	// The pipeline's load: generator processes, events/s they ask
	// together, and for how long.
	pipeGens, pipeRate, pipeSecs int
	// pipeRingMiB is the daemon's ring under the sustained load.
	pipeRingMiB int
}

type row struct {
	target, measured, verdict string
}

func run(cfg config) error {
	if cfg.dir == "" {
		d, err := os.MkdirTemp("/var/tmp", "ringfence-storebench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		cfg.dir = d
	}
	var rows []row
	if cfg.parts["pipeline"] {
		r, err := pipelineRows(cfg)
		if err != nil {
			return err
		}
		rows = append(rows, r...)
	}
	if cfg.parts["queries"] {
		r, err := queryRows(cfg)
		if err != nil {
			return err
		}
		rows = append(rows, r...)
	}
	if cfg.parts["memory"] {
		busy, err := daemonMemory(cfg)
		if err != nil {
			return err
		}
		rows = append(rows,
			row{"daemon RSS idle <= 60 MB", fmt.Sprintf("%.1f MB", busy.idle), pass(busy.idle <= 60)},
			row{"daemon RSS at 100,000 events/s <= 150 MB, 0 lost", fmt.Sprintf("%.1f MB peak at %.0f/s, %d of %d stored, %d lost", busy.peak, busy.rate, busy.stored, busy.generated, busy.lost), pass(busy.met())},
		)
	}
	printTable(rows)
	return nil
}

// pipelineRows measures the daemon taking distinct file events from the
// kernel ring into its store, without and with JSON lines on stdout, side
// by side.
func pipelineRows(cfg config) ([]row, error) {
	var rows []row
	var alone float64
	for _, stdout := range []bool{false, true} {
		r, err := drainRing(cfg, stdout, 2, 800_000, 1024)
		if err != nil {
			return nil, err
		}
		target := "pipeline, ring to store: >= 500,000 distinct events/s, 0 lost"
		got := r.String()
		if stdout {
			target = "  the same with JSON lines on stdout (a drained pipe)"
			if alone > 0 {
				got += fmt.Sprintf("; %.2f× the rate without", r.rate/alone)
			}
		} else {
			alone = r.rate
		}
		rows = append(rows, row{target, got, pass(r.met())})
	}
	for _, stdout := range []bool{false, true} {
		p, err := pipeline(cfg, stdout, cfg.pipeGens, cfg.pipeRate, cfg.pipeSecs)
		if err != nil {
			return nil, err
		}
		target := fmt.Sprintf("pipeline, ring (%d MiB) to store, %s distinct events/s for %d s, 0 lost", cfg.pipeRingMiB, count(cfg.pipeRate), cfg.pipeSecs)
		if stdout {
			target = "  the same with JSON lines on stdout (a drained pipe)"
		}
		rows = append(rows, row{target, p.String(), pass(p.met())})
	}
	return rows, nil
}

// queryRows fills the stores and asks them the responders' questions.
func queryRows(cfg config) ([]row, error) {
	start, err := startupMedian(cfg.ringfence, cfg.queries)
	if err != nil {
		return nil, err
	}
	rows := []row{{"ringfence process start-up alone (version), for reference", fmt.Sprintf("%s median of %d runs", ms(start), cfg.queries), ""}}
	for _, n := range []int{cfg.smallEvents, cfg.events} {
		r, err := storeRows(cfg, n, n == cfg.events)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

// storeRows fills a store of n events as a running daemon leaves it (its
// sink still open, the active segment unsealed) and asks it the questions,
// as whole ringfence events processes, and of jq those that say so.
func storeRows(cfg config, n int, big bool) ([]row, error) {
	c := newCorpus(n)
	s, rate, err := ingest(c, filepath.Join(cfg.dir, fmt.Sprintf("store-%d", n)))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var rows []row
	if big {
		rows = append(rows, row{"ingest >= 200,000 events/s, zero loss", fmt.Sprintf("%.0f events/s, %d stored, 0 lost", rate, n), pass(rate >= 200_000)})
	}
	var jsonl string
	for _, qn := range questions(c) {
		want := c.count(qn.q)
		median, err := cliMedian(cfg.ringfence, filepath.Join(cfg.dir, fmt.Sprintf("store-%d", n)), qn.q, cfg.queries, want)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", qn.name, err)
		}
		rows = append(rows, row{fmt.Sprintf("%s of %s: <= %s", qn.name, count(n), ms(qn.goal)),
			fmt.Sprintf("%s median of %d runs, %d events", ms(median), cfg.queries, want), pass(median <= qn.goal)})
		if cfg.skipJQ || qn.jqGoal == 0 || (qn.jqBig != big) {
			continue
		}
		if jsonl == "" {
			jsonl = filepath.Join(cfg.dir, fmt.Sprintf("events-%d.jsonl", n))
			if err := writeJSONLines(c, jsonl); err != nil {
				return nil, err
			}
			defer os.Remove(jsonl)
		}
		jqTime, err := jqRun(jsonl, qn.jq, want)
		if err != nil {
			return nil, err
		}
		ratio := float64(jqTime) / float64(median)
		rows = append(rows, row{fmt.Sprintf("  the same >= %.0fx faster than jq", qn.jqGoal),
			fmt.Sprintf("jq %s, ringfence %s: %.0fx", jqTime.Round(time.Millisecond), ms(median), ratio), pass(ratio >= qn.jqGoal)})
	}
	return rows, nil
}

// question is one query of the bench, with its goal for a whole
// ringfence events process, and the jq filter that asks the same.
type question struct {
	name   string
	q      store.Query
	goal   time.Duration
	jq     string
	jqGoal float64
	jqBig  bool // compared with jq on the large store, else on the small one
}

func questions(c *corpus) []question {
	noon := c.start.Add(12 * time.Hour)
	third := c.at(3 * (c.n / (quietEvents + 1))).Truncate(time.Hour)
	busy := c.containers[7].Name
	return []question{
		{name: "quiet container, no window", q: store.Query{Container: quietName}, goal: 10 * time.Millisecond,
			jq: fmt.Sprintf(`select(.container.name == %q)`, quietName), jqGoal: 100},
		{name: "quiet container, 1 h window", q: store.Query{Container: quietName, Since: third, Until: third.Add(time.Hour)}, goal: 10 * time.Millisecond},
		{name: "busy container, 1 h window", q: store.Query{Container: busy, Since: noon, Until: noon.Add(time.Hour)}, goal: 50 * time.Millisecond,
			jq: fmt.Sprintf(`select(.container.name == %q and .time[0:13] == %q)`, busy, noon.Format("2006-01-02T15")), jqGoal: 50, jqBig: true},
	}
}

// count returns how many events of the corpus q selects.
func (c *corpus) count(q store.Query) int {
	n := 0
	for i := 0; i < c.n; i++ {
		if e := c.event(i); q.Matches(&e) {
			n++
		}
	}
	return n
}

func pass(ok bool) string {
	if ok {
		return "MET"
	}
	return "NOT MET"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// count formats n with thousands separators.
func count(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func printTable(rows []row) {
	fmt.Printf("\n%-72s  %-56s  %s\n", "TARGET", "MEASURED", "")
	for _, r := range rows {
		fmt.Printf("%-72s  %-56s  %s\n", r.target, r.measured, r.verdict)
	}
	fmt.Printf("\n(%s, %d CPUs)\n", runtime.Version(), runtime.NumCPU())
}

// ingest pushes the corpus through the same batching sink the daemon
// uses and returns the sink still open, as a running daemon has it, once
// every event is stored (synced), with the rate until then.
func ingest(c *corpus, dir string) (*store.Sink, float64, error) {
	w, err := store.OpenWriter(dir, store.Options{})
	if err != nil {
		return nil, 0, err
	}
	s := store.NewSink(w, store.SinkOptions{})
	start := time.Now()
	for i := 0; i < c.n; i++ {
		// The daemon encodes each event once, before its sinks.
		e := c.event(i)
		line, err := e.MarshalLine()
		if err != nil {
			s.Close()
			return nil, 0, err
		}
		if err := s.Write(&e, line); err != nil {
			s.Close()
			return nil, 0, err
		}
	}
	for s.Stats().Events < uint64(c.n) && s.Lost()["store_write_error"] == 0 {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	if lost := s.Lost()["store_write_error"]; lost != 0 {
		s.Close()
		return nil, 0, fmt.Errorf("%d events lost to write errors", lost)
	}
	rate := float64(c.n) / elapsed.Seconds()
	st := s.Stats()
	fmt.Printf("ingest: %d events in %s (%.0f/s), store stalls %d; %d segments, %d MB\n", c.n, elapsed.Round(time.Millisecond), rate, s.Stalls()["store_queue"], st.Segments, st.Bytes>>20)
	return s, rate, nil
}

func writeJSONLines(c *corpus, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 0, 1<<20)
	for i := 0; i < c.n; i++ {
		e := c.event(i)
		js, err := e.MarshalLine()
		if err != nil {
			return err
		}
		buf = append(append(buf, js...), '\n')
		if len(buf) > 1<<20-4096 {
			if _, err := f.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	_, err = f.Write(buf)
	return err
}
