package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
)

// writePool is a set of distinct events of 50 containers with their JSON
// lines, encoded once as the daemon does before its sinks.
type writePool struct {
	events []event.Event
	lines  [][]byte
}

func newWritePool(tb testing.TB) *writePool {
	tb.Helper()
	p := &writePool{}
	for i := 0; i < 4096; i++ {
		e := ev(i, fmt.Sprintf("c%02d", (i*7919)%50), event.KindFile)
		e.Comm, e.CgroupID, e.Flags = "worker", uint64(4000+i%50), 577
		e.Container.ID = fmt.Sprintf("%064x", i%50)
		line, err := e.MarshalLine()
		if err != nil {
			tb.Fatal(err)
		}
		p.events = append(p.events, e)
		p.lines = append(p.lines, line)
	}
	return p
}

// BenchmarkSinkWrite is the store's write path as the daemon drives it:
// one Write per event into the batching sink, batches of up to 4096
// written with one write and one fsync each, until Close has synced the
// last. It reports ns per event, syncs included.
func BenchmarkSinkWrite(b *testing.B) {
	p := newWritePool(b)
	w, err := OpenWriter(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	s := NewSink(w, SinkOptions{})
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		j := i % len(p.events)
		e := &p.events[j]
		e.Time = t0.Add(time.Duration(i) * time.Microsecond)
		if err := s.Write(e, p.lines[j]); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if got := s.Stats().Events; got != uint64(b.N) {
		b.Fatalf("%d events stored of %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkWriterAppend is the writer alone: batches of 4096 events, each
// framed, indexed, written and synced.
func BenchmarkWriterAppend(b *testing.B) {
	p := newWritePool(b)
	w, err := OpenWriter(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(p.events) {
		batch := p.events[:min(len(p.events), b.N-i)]
		for j := range batch {
			batch[j].Time = t0.Add(time.Duration(i+j) * time.Microsecond)
		}
		if err := w.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}
