package main

import (
	"fmt"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
)

// corpus generates a deterministic, realistic mix of events from 50
// containers, spread evenly over one day.
type corpus struct {
	n          int
	start      time.Time
	containers []event.Container
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
	return c
}

func (c *corpus) span() time.Duration { return 24 * time.Hour }

// event returns event i (0 <= i < n).
func (c *corpus) event(i int) event.Event {
	e := c.pool[i%len(c.pool)]
	e.Time = c.start.Add(time.Duration(float64(c.span()) * float64(i) / float64(c.n)))
	return e
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
