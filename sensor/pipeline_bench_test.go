package sensor

import (
	"testing"
	"time"
)

// BenchmarkPipeline drives the daemon's userspace pipeline from raw ring
// records to a synced store: the reader's stage (decode, queue), the sinks'
// stage (identity, counts, encoding, the cgroup-only tier's judgement of
// file writes) and the store's batches, written and synced, with the API
// hub and, in the stdout case, JSON lines on a pipe a reader drains. Every
// record is a distinct file event. It reports events/s and ns per event,
// until the store has synced the last.
func BenchmarkPipeline(b *testing.B) {
	for _, c := range []struct {
		name   string
		stdout bool
	}{{"store", false}, {"store+stdout", true}} {
		b.Run(c.name, func(b *testing.B) {
			recs := fileRecords(4096)
			sinks, st := daemonSinks(b, c.stdout)
			s := newTestPipeline(b, sinks...)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			runPipeline(s, recs, b.N)
			if err := st.Close(); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			if got := st.Stats().Events; got != uint64(b.N) {
				b.Fatalf("%d events stored of %d", got, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
		})
	}
}
