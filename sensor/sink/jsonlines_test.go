package sink

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
)

func TestJSONLinesFieldNames(t *testing.T) {
	var buf bytes.Buffer
	s := NewJSONLines(&buf)
	code := int32(3)
	events := []event.Event{
		{Time: time.Unix(1, 5).UTC(), Kind: event.KindExec, Verdict: event.VerdictAllow, PID: 7, PPID: 1, CgroupID: 42, Binary: "/bin/sh", Args: []string{"sh", "-c", "<x>"}},
		{Time: time.Unix(2, 0).UTC(), Kind: event.KindExit, ExitCode: &code},
		{Time: time.Unix(3, 0).UTC(), Kind: event.KindBind, Family: "inet", Addr: "0.0.0.0", Port: 80, Proto: "tcp", Container: &event.Container{ID: "c1", Name: "web"}},
	}
	for i := range events {
		line, err := events[i].MarshalLine()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(&events[i], line); err != nil {
			t.Fatal(err)
		}
	}
	if buf.Len() != 0 {
		t.Fatal("wrote before Flush: the sink is meant to buffer")
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(events) {
		t.Fatalf("%d lines for %d events", len(lines), len(events))
	}
	want := []map[string]any{
		{"time": "1970-01-01T00:00:01.000000005Z", "kind": "exec", "verdict": "allow", "pid": 7.0, "ppid": 1.0, "cgroup_id": 42.0, "binary": "/bin/sh"},
		{"kind": "exit", "exit_code": 3.0},
		{"kind": "bind", "family": "inet", "addr": "0.0.0.0", "port": 80.0, "proto": "tcp", "container": map[string]any{"id": "c1", "name": "web"}},
	}
	for i, line := range lines {
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		for k, v := range want[i] {
			gj, _ := json.Marshal(got[k])
			wj, _ := json.Marshal(v)
			if string(gj) != string(wj) {
				t.Errorf("line %d: %s = %s, want %s", i, k, gj, wj)
			}
		}
		if _, ok := got["path"]; ok {
			t.Errorf("line %d: empty fields must be left out: %s", i, line)
		}
	}
	if !strings.Contains(lines[0], `"<x>"`) {
		t.Errorf("HTML escaping applied: %s", lines[0])
	}
}
