package event

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// oracleLine is the reference encoding AppendLine must equal: encoding/json
// with HTML characters unescaped, a bind event's port always present.
func oracleLine(e *Event) ([]byte, error) {
	type plainEvent Event
	type bindLine struct {
		*plainEvent
		Port uint16 `json:"port"`
	}
	var v any = (*plainEvent)(e)
	if e.Kind == KindBind {
		v = bindLine{(*plainEvent)(e), e.Port}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

// awkward strings: every kind of character JSON escapes or could.
var awkward = []string{
	"", "plain", `quote " and \ backslash`, "<html> & </html>", "\x00\x01\x1f\x7f", "\b\f\n\r\t",
	"caf\u00e9 \u65e5\u672c \U0001F600", "\u2028\u2029", "bad \xff utf-8 \xc3", "\xe2\x80", "/var/lib/app/data/1.db",
}

// randomEvent sets each settable field of an Event (found by reflection, so
// that a field added later is covered too) at random: zero, or a value.
func randomEvent(r *rand.Rand) Event {
	var e Event
	v := reflect.ValueOf(&e).Elem()
	for i := range v.NumField() {
		if r.IntN(3) == 0 {
			continue // left zero
		}
		setRandom(r, v.Field(i))
	}
	if r.IntN(4) == 0 {
		e.Kind = KindBind
	}
	return e
}

func setRandom(r *rand.Rand, f reflect.Value) {
	switch f.Kind() {
	case reflect.String:
		s := awkward[r.IntN(len(awkward))]
		if r.IntN(4) == 0 {
			b := make([]byte, r.IntN(12))
			for i := range b {
				b[i] = byte(r.UintN(256))
			}
			s = string(b)
		}
		f.SetString(s)
	case reflect.Bool:
		f.SetBool(r.IntN(2) == 0)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f.SetUint(r.Uint64() >> r.UintN(64)) // truncated to the field's size
	case reflect.Int32, reflect.Int64:
		f.SetInt(int64(r.Uint64() >> r.UintN(64)))
	case reflect.Pointer:
		p := reflect.New(f.Type().Elem())
		setRandom(r, p.Elem())
		f.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(f.Type(), r.IntN(4), 4)
		for i := range s.Len() {
			setRandom(r, s.Index(i))
		}
		f.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(f.Type())
		for range r.IntN(5) {
			k, val := reflect.New(f.Type().Key()).Elem(), reflect.New(f.Type().Elem()).Elem()
			setRandom(r, k)
			setRandom(r, val)
			m.SetMapIndex(k, val)
		}
		f.Set(m)
	case reflect.Struct:
		if f.Type() == reflect.TypeFor[time.Time]() {
			loc := []*time.Location{time.UTC, time.FixedZone("east", 5*3600+30*60), time.FixedZone("west", -7*3600)}[r.IntN(3)]
			f.Set(reflect.ValueOf(time.Unix(r.Int64N(1<<34), r.Int64N(1e9)).In(loc)))
			return
		}
		for i := range f.NumField() {
			if f.Field(i).CanSet() {
				setRandom(r, f.Field(i))
			}
		}
	}
}

// TestAppendLineMatchesEncodingJSON compares AppendLine with encoding/json
// over hand-picked and random events whose every field is set or not.
func TestAppendLineMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 28, 3, 46, 28, 956800315, time.UTC)
	code, uid := int32(-1), uint32(0)
	events := []Event{
		{},
		{Time: at, Kind: KindBind, Family: "inet", Addr: "0.0.0.0", Proto: "udp"},
		{Time: at, Kind: KindExit, ExitCode: &code, Signal: 9, CoreDumped: true},
		{Time: at, Kind: KindFile, OwnerUID: &uid, OwnerGID: &uid, Args: []string{}, Counts: map[string]uint64{}},
		{Time: at.In(time.FixedZone("", -(9*3600 + 30*60))), Kind: KindExec, Args: awkward, Container: &Container{}},
		{Time: at, Kind: KindSyscalls, Counts: map[string]uint64{"openat": 38, "ia32:5": 1, "0": 1<<64 - 1}},
	}
	for _, s := range awkward {
		events = append(events, Event{Time: at, Kind: Kind(s), Comm: s, Path: s, Args: []string{s, s}, Container: &Container{ID: s, Name: s},
			Counts: map[string]uint64{s: 1, s + "x": 2}})
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		events = append(events, randomEvent(r))
	}
	buf := []byte("prefix")
	for i := range events {
		e := &events[i]
		want, werr := oracleLine(e)
		got, gerr := e.AppendLine(buf[:6])
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("event %d: error %v, encoding/json's %v: %+v", i, gerr, werr, e)
		}
		if string(got[:6]) != "prefix" {
			t.Fatalf("event %d: the buffer's prefix was overwritten: %q", i, got)
		}
		if werr == nil && !bytes.Equal(got[6:], want) {
			t.Fatalf("event %d:\n got  %s\n want %s", i, got[6:], want)
		}
		buf = got[:6]
	}
}

// TestAppendLineTimeOutOfRange: a time JSON cannot carry is an error, and
// the buffer is returned as it was.
func TestAppendLineTimeOutOfRange(t *testing.T) {
	e := Event{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Kind: KindExec}
	b, err := e.AppendLine([]byte("x"))
	if err == nil || string(b) != "x" {
		t.Fatalf("AppendLine = %q, %v; want an error and the buffer unchanged", b, err)
	}
}

// FuzzAppendLine compares AppendLine with encoding/json on arbitrary strings.
func FuzzAppendLine(f *testing.F) {
	for _, s := range awkward {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		e := Event{Time: time.Unix(1, 2).UTC(), Kind: KindFile, Path: a, Target: b, Args: []string{a, b}, Counts: map[string]uint64{a: 1, b: 2}}
		want, werr := oracleLine(&e)
		got, gerr := e.AppendLine(nil)
		if werr != nil || gerr != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %s (%v), want %s (%v)", got, gerr, want, werr)
		}
	})
}

func BenchmarkAppendLine(b *testing.B) {
	e := Event{Time: time.Now(), Kind: KindFile, Verdict: VerdictAllow, Source: "tracepoint", PID: 1234, TID: 1234, PPID: 1, Comm: "worker",
		CgroupID: 4242, Path: "/var/lib/app/data/000123.db", Op: "open", Flags: 577, FileMode: 0o644,
		Container: &Container{ID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Name: "app-01", Image: "registry.internal/team1/app:1.0", Pod: "app-01-x", PodNamespace: "prod"}}
	b.Run("AppendLine", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = e.AppendLine(buf[:0])
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			oracleLine(&e)
		}
	})
}
