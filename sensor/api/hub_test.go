package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/store"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func fileEvent(ctr string) event.Event {
	e := event.Event{Time: t0, Kind: event.KindFile, Verdict: event.VerdictAllow, Path: "/etc/" + ctr}
	if ctr != "" {
		e.Container = &event.Container{ID: "id-" + ctr, Name: ctr, Image: "registry.internal/" + ctr, Pod: "pod-" + ctr, PodNamespace: "prod"}
	}
	return e
}

func lossReport() event.Event {
	e := event.LossReport(map[string]uint64{"ring_full_file": 3})
	e.Time = t0
	return e
}

func write(tb testing.TB, h *Hub, e event.Event) {
	tb.Helper()
	line, err := e.MarshalLine()
	if err != nil {
		tb.Fatal(err)
	}
	if err := h.Write(&e, line); err != nil {
		tb.Fatal(err)
	}
}

// TestHubLossReportsReachEveryFollower: whatever a follower selects, a loss
// report reaches it; other events reach only the followers they match.
func TestHubLossReportsReachEveryFollower(t *testing.T) {
	cases := []struct {
		name      string
		q         store.Query
		wantWeb   bool // a file event of container web
		wantOther bool // a sensor event that is not a loss report
	}{
		{"everything", store.Query{}, true, true},
		{"another container", store.Query{Container: "db"}, false, false},
		{"this container", store.Query{Container: "web"}, true, false},
		{"kind exec", store.Query{Kinds: []event.Kind{event.KindExec}}, false, false},
		{"verdict deny", store.Query{Verdicts: []event.Verdict{event.VerdictDeny}}, false, false},
		{"namespace", store.Query{PodNamespace: "prod"}, true, false},
		{"a window in the past", store.Query{Until: t0.Add(-time.Hour)}, false, false},
	}
	h := NewHub()
	subs := make([]*subscriber, len(cases))
	for i, c := range cases {
		subs[i] = h.subscribe(c.q)
	}
	write(t, h, fileEvent("web"))
	other := lossReport()
	other.Message = "policy reloaded"
	write(t, h, other)
	write(t, h, lossReport())
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for len(subs[i].ch) > 0 {
				got = append(got, string(<-subs[i].ch))
			}
			var sawWeb, sawOther, sawLoss bool
			for _, line := range got {
				sawWeb = sawWeb || strings.Contains(line, `"path":"/etc/web"`)
				sawOther = sawOther || strings.Contains(line, `"policy reloaded"`)
				sawLoss = sawLoss || strings.Contains(line, `"message":"`+event.LossMessage+`"`)
			}
			if !sawLoss || sawWeb != c.wantWeb || sawOther != c.wantOther {
				t.Fatalf("loss report %v (want true), web event %v (want %v), other sensor event %v (want %v): %q",
					sawLoss, sawWeb, c.wantWeb, sawOther, c.wantOther, got)
			}
		})
	}
}

// TestStreamSendsLossReports follows one container through the socket and
// gets the loss report, and not another container's event.
func TestStreamSendsLossReports(t *testing.T) {
	h := NewHub()
	path := serve(t, h, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lines := make(chan string, 16)
	go NewClient(path).Stream(ctx, store.Query{Container: "web", Kinds: []event.Kind{event.KindFile}}, func(b []byte) error {
		lines <- string(b)
		return nil
	})
	waitSubscribed(t, h)
	write(t, h, fileEvent("db"))
	write(t, h, lossReport())
	select {
	case line := <-lines:
		if !strings.Contains(line, `"counts":{"ring_full_file":3}`) {
			t.Fatalf("first streamed line is not the loss report: %s", line)
		}
	case <-ctx.Done():
		t.Fatal("no loss report reached the follower of container web")
	}
}

func waitSubscribed(tb testing.TB, h *Hub) {
	tb.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		h.mu.Lock()
		n := len(h.subs)
		h.mu.Unlock()
		if n > 0 {
			return
		}
	}
	tb.Fatal("the stream did not subscribe within 5 s")
}
