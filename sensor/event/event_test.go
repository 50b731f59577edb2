package event

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestMarshalLinePort checks that a bind event carries its port even when
// it is 0, exactly once, and that other kinds carry none.
func TestMarshalLinePort(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	zero, port := uint16(0), uint16(8080)
	for _, c := range []struct {
		name string
		e    Event
		want *uint16 // nil: no port key
	}{
		{"bind to port 0", Event{Time: at, Kind: KindBind, Family: "inet", Addr: "0.0.0.0", Proto: "udp"}, &zero},
		{"bind to a port", Event{Time: at, Kind: KindBind, Family: "inet6", Addr: "::", Port: 8080, Proto: "tcp"}, &port},
		{"file", Event{Time: at, Kind: KindFile, Path: "/a<b>&c", Op: "create"}, nil},
		{"exec", Event{Time: at, Kind: KindExec, Binary: "/bin/true"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			line, err := c.e.MarshalLine()
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(line), `"port":`); (c.want == nil && n != 0) || (c.want != nil && n != 1) {
				t.Fatalf("%d port keys in %s", n, line)
			}
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			got, ok := m["port"]
			if c.want == nil {
				if ok {
					t.Fatalf("port %v in %s", got, line)
				}
			} else if !ok || got != float64(*c.want) {
				t.Fatalf("port %v (present %v), want %d: %s", got, ok, *c.want, line)
			}
			if m["kind"] != string(c.e.Kind) {
				t.Fatalf("kind %v in %s", m["kind"], line)
			}
			var back Event
			if err := json.Unmarshal(line, &back); err != nil || back.Port != c.e.Port || back.Addr != c.e.Addr || back.Path != c.e.Path {
				t.Fatalf("round trip: %+v, %v", back, err)
			}
			if c.e.Path != "" && !strings.Contains(string(line), c.e.Path) {
				t.Fatalf("path escaped: %s", line)
			}
		})
	}
}

// TestLossReport checks that a loss report is recognised as one, through
// its JSON form too, and that look-alikes are not.
func TestLossReport(t *testing.T) {
	r := LossReport(map[string]uint64{"ring_full_file": 3})
	r.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if !r.IsLossReport() || r.Kind != KindSensor || r.Verdict != VerdictAllow || r.Counts["ring_full_file"] != 3 {
		t.Fatalf("LossReport made %+v", r)
	}
	line, err := r.MarshalLine()
	if err != nil {
		t.Fatal(err)
	}
	var back Event
	if err := json.Unmarshal(line, &back); err != nil || !back.IsLossReport() || back.Counts["ring_full_file"] != 3 {
		t.Fatalf("round trip of %s: %+v, %v", line, back, err)
	}
	inContainer := LossReport(nil)
	inContainer.Container = &Container{ID: "c1"}
	for name, e := range map[string]Event{
		"another sensor message": {Kind: KindSensor, Message: "started"},
		"another kind":           {Kind: KindFile, Message: LossMessage},
		"in a container":         inContainer,
	} {
		if e.IsLossReport() {
			t.Errorf("%s taken for a loss report: %+v", name, e)
		}
	}
}
