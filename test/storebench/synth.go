package main

import (
	"fmt"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
)

// quietName is the container with only quietEvents events in a corpus, one
// every eighth of the day.
const (
	quietName   = "quiet"
	quietEvents = 7
)

// corpus generates a deterministic, realistic mix of events from 50
// busy containers and one quiet one, spread evenly over one day.
type corpus struct {
	n          int
	start      time.Time
	containers []event.Container
	quiet      event.Event
	// pool holds distinct events; event i is pool[i%len(pool)] at its own
	// time, so producing one costs a copy, not a formatting run, and the
	// measurement is of the store.
	pool []event.Event
}

func newCorpus(n int) *corpus {
	c := &corpus{n: n, start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	for i := 0; i < 50; i++ {
		c.containers = append(c.containers, event.Container{
			ID:           fmt.Sprintf("%064x", uint64(i)*0x9e3779b97f4a7c15+1),
			Name:         fmt.Sprintf("app-%02d", i),
			Image:        fmt.Sprintf("registry.internal/team%d/app-%02d:1.%d", i%5, i, i%3),
			Pod:          fmt.Sprintf("app-%02d-7d9f8c-x%d", i, i%7),
			PodNamespace: fmt.Sprintf("ns-%d", i%4),
		})
	}
	for i := 0; i < 9973; i++ {
		c.pool = append(c.pool, c.make(i))
	}
	q := &event.Container{ID: fmt.Sprintf("%064x", 0xfeed), Name: quietName, Image: "registry.internal/batch/quiet:2", Pod: "quiet-0", PodNamespace: "batch"}
	c.quiet = event.Event{Kind: event.KindExec, Verdict: event.VerdictAllow, Source: "tracepoint", PID: 77, PPID: 1, Comm: "cron",
		CgroupID: 9000, Container: q, Binary: "/usr/local/bin/report", Args: []string{"report", "--daily"}}
	return c
}

func (c *corpus) span() time.Duration { return 24 * time.Hour }

// isQuiet reports whether event i is one of the quiet container's: the
// first event of each eighth of the day but the first.
func (c *corpus) isQuiet(i int) bool {
	step := c.n / (quietEvents + 1)
	return step > 0 && i > 0 && i%step == 0 && i/step <= quietEvents
}

// event returns event i (0 <= i < n).
func (c *corpus) event(i int) event.Event {
	e := c.pool[i%len(c.pool)]
	if c.isQuiet(i) {
		e = c.quiet
	}
	e.Time = c.at(i)
	return e
}

// at is the time of event i.
func (c *corpus) at(i int) time.Time {
	return c.start.Add(time.Duration(float64(c.span()) * float64(i) / float64(c.n)))
}

func (c *corpus) make(i int) event.Event {
	ctr := c.containers[(i*7919)%len(c.containers)]
	e := event.Event{
		Verdict:   event.VerdictAllow,
		Source:    "tracepoint",
		PID:       uint32(1000 + i%5000),
		TID:       uint32(1000 + i%5000),
		PPID:      uint32(900 + i%100),
		Comm:      "worker",
		CgroupID:  uint64(4000 + (i*7919)%len(c.containers)),
		Container: &ctr,
	}
	switch i % 10 {
	case 0:
		e.Kind, e.Binary, e.Args = event.KindExec, "/usr/bin/curl", []string{"curl", "-s", "http://svc.internal/health"}
	case 1:
		code := int32(0)
		e.Kind, e.ExitCode = event.KindExit, &code
	case 2:
		e.Kind, e.Family, e.Addr, e.Port, e.Proto = event.KindBind, "inet", "0.0.0.0", uint16(8000+i%100), "tcp"
	default:
		e.Kind, e.Op, e.Path, e.Flags = event.KindFile, "open", fmt.Sprintf("/var/lib/app/data/%d.db", i%977), 577
	}
	return e
}
