package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/ringfence/ringfence/sensor/store"
)

type config struct {
	events    int
	dir       string
	ringfence string
	queries   int
	skipJQ    bool
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
	c := newCorpus(cfg.events)
	var rows []row

	rate, err := ingest(c, filepath.Join(cfg.dir, "store"))
	if err != nil {
		return err
	}
	rows = append(rows, row{"ingest >= 200,000 events/s, zero loss", fmt.Sprintf("%.0f events/s, %d stored, 0 lost", rate, cfg.events), pass(rate >= 200_000)})

	q := store.Query{Container: c.containers[7].Name, Since: c.start.Add(12 * time.Hour), Until: c.start.Add(13 * time.Hour)}
	median, count, err := queryMedian(filepath.Join(cfg.dir, "store"), q, cfg.queries)
	if err != nil {
		return err
	}
	rows = append(rows, row{fmt.Sprintf("1 container, 1 h, of %d stored: median <= 50 ms", cfg.events), fmt.Sprintf("%s median over %d runs (%d events)", median.Round(10*time.Microsecond), cfg.queries, count), pass(median <= 50*time.Millisecond)})

	if !cfg.skipJQ {
		jqTime, jqCount, err := jqCompare(c, cfg.dir, q)
		if err != nil {
			return err
		}
		if jqCount != count {
			return fmt.Errorf("jq found %d events, the store %d: not the same answer", jqCount, count)
		}
		ratio := float64(jqTime) / float64(median)
		rows = append(rows, row{"same question >= 50x faster than jq", fmt.Sprintf("jq %s, store %s: %.0fx", jqTime.Round(time.Millisecond), median.Round(10*time.Microsecond), ratio), pass(ratio >= 50)})
	}

	busy, err := daemonMemory(cfg)
	if err != nil {
		return err
	}
	rows = append(rows,
		row{"daemon RSS idle <= 60 MB", fmt.Sprintf("%.1f MB", busy.idle), pass(busy.idle <= 60)},
		row{"daemon RSS at 100,000 events/s <= 150 MB, 0 lost", fmt.Sprintf("%.1f MB peak at %.0f/s, %d of %d stored, %d lost", busy.peak, busy.rate, busy.stored, busy.generated, busy.lost), pass(busy.met())},
	)
	printTable(rows)
	return nil
}

func pass(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT MET"
}

func printTable(rows []row) {
	fmt.Printf("\n%-52s  %-52s  %s\n", "TARGET", "MEASURED", "")
	for _, r := range rows {
		fmt.Printf("%-52s  %-52s  %s\n", r.target, r.measured, r.verdict)
	}
	fmt.Printf("\n(%s, %d CPUs)\n", runtime.Version(), runtime.NumCPU())
}

// ingest pushes the corpus through the same batching sink the daemon uses.
func ingest(c *corpus, dir string) (float64, error) {
	w, err := store.OpenWriter(dir, store.Options{})
	if err != nil {
		return 0, err
	}
	s := store.NewSink(w, store.SinkOptions{})
	start := time.Now()
	for i := 0; i < c.n; i++ {
		// The daemon encodes each event once, before its sinks.
		e := c.event(i)
		line, err := e.MarshalLine()
		if err != nil {
			return 0, err
		}
		if err := s.Write(&e, line); err != nil {
			return 0, err
		}
	}
	if err := s.Close(); err != nil {
		return 0, err
	}
	elapsed := time.Since(start)
	if lost := s.Lost()["store_write_error"]; lost != 0 {
		return 0, fmt.Errorf("%d events lost to write errors", lost)
	}
	if got := s.Stats().Events; got != uint64(c.n) {
		return 0, fmt.Errorf("%d events stored of %d", got, c.n)
	}
	rate := float64(c.n) / elapsed.Seconds()
	fmt.Printf("ingest: %d events in %s (%.0f/s), store stalls %d\n", c.n, elapsed.Round(time.Millisecond), rate, s.Stalls()["store_queue"])
	return rate, nil
}

// queryMedian opens a fresh reader for every query, as a CLI call does.
func queryMedian(dir string, q store.Query, runs int) (time.Duration, int, error) {
	var times []time.Duration
	count := -1
	for i := 0; i < runs; i++ {
		start := time.Now()
		r, err := store.OpenReader(dir)
		if err != nil {
			return 0, 0, err
		}
		res, err := r.Query(q)
		r.Close()
		if err != nil {
			return 0, 0, err
		}
		times = append(times, time.Since(start))
		if count >= 0 && len(res.Events) != count {
			return 0, 0, fmt.Errorf("query answers differ between runs: %d and %d", count, len(res.Events))
		}
		count = len(res.Events)
	}
	slices.Sort(times)
	fmt.Printf("query: %d events, fastest %s, median %s, slowest %s\n", count, times[0], times[len(times)/2], times[len(times)-1])
	return times[len(times)/2], count, nil
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
