package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
)

// BenchmarkQueryWindow asks for one container's hour out of a day of events,
// opening a fresh reader each time as a CLI call does.
func BenchmarkQueryWindow(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	w, err := OpenWriter(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]event.Event, 0, 4096)
	for i := 0; i < n; i++ {
		e := ev(0, fmt.Sprintf("c%02d", (i*7919)%50), event.KindFile)
		e.Time = t0.Add(time.Duration(float64(24*time.Hour) * float64(i) / n))
		batch = append(batch, e)
		if len(batch) == cap(batch) {
			if err := w.Append(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	w.Append(batch)
	w.Close()
	q := Query{Container: "c07", Since: t0.Add(12 * time.Hour), Until: t0.Add(13 * time.Hour)}
	b.ResetTimer()
	for b.Loop() {
		r, err := OpenReader(dir)
		if err != nil {
			b.Fatal(err)
		}
		res, err := r.Query(q)
		r.Close()
		if err != nil || len(res.Events) == 0 {
			b.Fatal(err, len(res.Events))
		}
	}
}
