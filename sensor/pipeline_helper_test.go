package sensor

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"testing"
	"time"
	"unsafe"

	"github.com/ringfence/ringfence/bpf"
	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/api"
	"github.com/ringfence/ringfence/sensor/decode"
	"github.com/ringfence/ringfence/sensor/kernel"
	"github.com/ringfence/ringfence/sensor/sink"
	"github.com/ringfence/ringfence/sensor/store"
	"github.com/ringfence/ringfence/sensor/violation"
)

// testBoot is the wall-clock boot time of the records the tests make.
var testBoot = time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)

// newTestPipeline returns a sensor with the stages between the ring and the
// sinks and nothing of the kernel: records go in through onRecord, events
// come out of deliver, judged as on the cgroup-only tier (this machine's).
func newTestPipeline(tb testing.TB, sinks ...Sink) *Sensor {
	tb.Helper()
	eng := enforce.NewEngine(nil, enforce.Capabilities{Bind: true}, nil, nil)
	cfg := withDefaults(Config{Sinks: sinks})
	return &Sensor{
		cfg:        cfg,
		probe:      kernel.Probe{Tier: kernel.TierCgroupOnly},
		decoder:    decode.New(testBoot, nil),
		queue:      newQueue(cfg.QueueLen),
		counts:     newCounts(),
		engine:     eng,
		violations: violation.New(eng, 0),
	}
}

// fileRecords returns n raw file records as the kernel writes them, each
// with its own path (distinct events) and a later time than the one before.
func fileRecords(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		r := bpf.SensorFileEvent{
			Hdr: bpf.SensorEventHdr{TsBootNs: uint64(i+1) * 1000, CgroupId: 4242, Pid: 1000 + uint32(i%7), Tid: 1000 + uint32(i%7),
				Ppid: 1, Kind: uint16(bpf.SensorEventKindKIND_FILE), Source: uint16(bpf.SensorEventSourceSOURCE_TRACEPOINT)},
			Op: uint32(bpf.SensorFileOpFILE_OP_OPEN), Flags: 0o1101, Mode: 0o644, Dirfd: -100,
			PathKind: uint16(bpf.SensorPathKindPATH_ABSOLUTE),
		}
		setInt8(r.Hdr.Comm[:], "worker")
		r.PathLen = setInt8(r.Path[:], fmt.Sprintf("/var/lib/app/data/%06d.db", i))
		// Up to the path's NUL, as the kernel copies it into the ring.
		raw := make([]byte, unsafe.Offsetof(r.Path)+uintptr(r.PathLen)+1)
		copy(raw, unsafe.Slice((*byte)(unsafe.Pointer(&r)), len(raw)))
		out[i] = raw
	}
	return out
}

// setTime sets the boot time of a raw record.
func setTime(raw []byte, ns uint64) { binary.NativeEndian.PutUint64(raw, ns) }

func setInt8(dst []int8, s string) uint32 {
	for i := range dst {
		dst[i] = 0
	}
	for i := 0; i < len(s) && i < len(dst); i++ {
		dst[i] = int8(s[i])
	}
	return uint32(min(len(s), len(dst)))
}

// runPipeline feeds n records (cycling through recs, each given a time
// later than the last) through the pipeline's reader and sink stages, and
// returns once the sinks have been handed every event.
func runPipeline(s *Sensor, recs [][]byte, n int) {
	done := make(chan struct{})
	go func() {
		s.deliver()
		close(done)
	}()
	for i := range n {
		raw := recs[i%len(recs)]
		setTime(raw, uint64(i+1)*1000)
		s.onRecord(raw)
	}
	s.queue.close()
	<-done
	s.flush()
}

// openStore opens a store sink in a directory of the test's, as the daemon does.
func openStore(tb testing.TB) *store.Sink {
	tb.Helper()
	w, err := store.OpenWriter(tb.TempDir(), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return store.NewSink(w, store.SinkOptions{})
}

// drainedPipe returns the writing end of a pipe whose reading end a
// goroutine drains, as a log collector reads the daemon's stdout.
func drainedPipe(tb testing.TB) *os.File {
	tb.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, r)
		close(done)
	}()
	tb.Cleanup(func() {
		w.Close()
		<-done
		r.Close()
	})
	return w
}

// daemonSinks returns the sinks of a daemon as cmd/ringfence wires them:
// the API hub, JSON lines on stdout when asked, and the store.
func daemonSinks(tb testing.TB, stdout bool) ([]Sink, *store.Sink) {
	tb.Helper()
	sinks := []Sink{api.NewHub()}
	if stdout {
		lines := sink.NewJSONLines(drainedPipe(tb))
		tb.Cleanup(func() { lines.Close() }) // before the pipe closes
		sinks = append(sinks, lines)
	}
	st := openStore(tb)
	return append(sinks, st), st
}
