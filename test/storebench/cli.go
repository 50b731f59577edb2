package main

import (
	"fmt"
	"os/exec"
	"slices"
	"time"

	"github.com/ringfence/ringfence/sensor/store"
)

// cliMedian runs `ringfence events -o json` for q on the store runs times,
// a whole process each time as a responder runs it, and returns the
// median wall time from start to exit. Every run must print want events.
func cliMedian(bin, dir string, q store.Query, runs, want int) (time.Duration, error) {
	args := []string{"events", "--store", dir, "-o", "json"}
	if q.Container != "" {
		args = append(args, "--container", q.Container)
	}
	if !q.Since.IsZero() {
		args = append(args, "--since", q.Since.Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		args = append(args, "--until", q.Until.Format(time.RFC3339Nano))
	}
	times, err := timeRuns(runs, func() (int, error) { return countLines(exec.Command(bin, args...)) }, want)
	if err != nil {
		return 0, err
	}
	inProcess, err := timeRuns(runs, func() (int, error) { return queryOnce(dir, q) }, want)
	if err != nil {
		return 0, err
	}
	fmt.Printf("query %v: %d events; process fastest %s, median %s, slowest %s; in process (OpenReader+Query) median %s\n",
		args[5:], want, ms(times[0]), ms(times[len(times)/2]), ms(times[len(times)-1]), ms(inProcess[len(inProcess)/2]))
	return times[len(times)/2], nil
}

// startupMedian is the median wall time of `ringfence version`: what any
// ringfence process costs before it does anything.
func startupMedian(bin string, runs int) (time.Duration, error) {
	times, err := timeRuns(runs, func() (int, error) { return countLines(exec.Command(bin, "version")) }, 1)
	if err != nil {
		return 0, err
	}
	return times[len(times)/2], nil
}

// timeRuns times fn runs times, checking it finds want events each time,
// and returns the times sorted.
func timeRuns(runs int, fn func() (int, error), want int) ([]time.Duration, error) {
	var times []time.Duration
	for i := 0; i < runs; i++ {
		start := time.Now()
		n, err := fn()
		if err != nil {
			return nil, err
		}
		times = append(times, time.Since(start))
		if n != want {
			return nil, fmt.Errorf("%d events, want %d", n, want)
		}
	}
	slices.Sort(times)
	return times, nil
}

// queryOnce asks the store in this process, with a fresh reader.
func queryOnce(dir string, q store.Query) (int, error) {
	r, err := store.OpenReader(dir)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	res, err := r.Query(q)
	if err != nil {
		return 0, err
	}
	return len(res.Events), nil
}
