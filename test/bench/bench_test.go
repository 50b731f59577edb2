package main

import (
	"math"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{2, 2, 9, 2, 1}, 2},
	} {
		in := append([]float64(nil), c.in...)
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Fatalf("median reordered its input: %v", c.in)
			}
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median(nil) is not NaN")
	}
	if got := medianInt([]int{7, 1, 4, 100}); got != 5 {
		t.Errorf("medianInt = %d, want 5", got)
	}
	if got := medianInt(nil); got != 0 {
		t.Errorf("medianInt(nil) = %d, want 0", got)
	}
}

func TestRatioSpread(t *testing.T) {
	r := ratios([]float64{110, 240, 90}, []float64{100, 200, 100})
	want := []float64{1.1, 1.2, 0.9}
	for i := range want {
		if math.Abs(r[i]-want[i]) > 1e-12 {
			t.Fatalf("ratios = %v, want %v", r, want)
		}
	}
	lo, hi := spread(r)
	if math.Abs(lo-0.9) > 1e-12 || math.Abs(hi-1.2) > 1e-12 {
		t.Errorf("spread = %v–%v, want 0.9–1.2", lo, hi)
	}
	if lo, hi := spread(nil); !math.IsNaN(lo) || !math.IsNaN(hi) {
		t.Error("spread(nil) is not NaN")
	}
}

func TestResultCells(t *testing.T) {
	r := result{
		workload: "bind", placement: "inside",
		without: []float64{100, 110, 90},
		with:    []float64{120, 121, 99},
		events:  []int{50000, 50004, 49990},
		lost:    []uint64{0, 3, 0},
	}
	got := strings.Join(r.cells(), "|")
	r.floor = []float64{104, 105, 106}
	r.placement = "outside"
	if c := r.cells(); c[6] != "1.050" || c[10] != "NOT MET" {
		t.Errorf("outside with the no-op's runs: cells = %q, want no-op only 1.050 and NOT MET", c)
	}
	want := "bind|inside|100.0|120.0|1.200|1.100–1.200||50000|0||"
	if got != want {
		t.Errorf("cells = %q, want %q", got, want)
	}
}

func TestFormatTable(t *testing.T) {
	got := formatTable([]string{"workload", "placement", "ratio", "spread"}, [][]string{
		{"bind", "inside", "1.200", "1.100–1.200"},
		{"open-write+close", "outside", "12.345", "1.0–1.1"},
	})
	want := "" +
		"workload          placement   ratio       spread\n" +
		"bind              inside      1.200  1.100–1.200\n" +
		"open-write+close  outside    12.345      1.0–1.1\n"
	if got != want {
		t.Errorf("formatTable:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseNsOp(t *testing.T) {
	if v, err := parseNsOp([]byte("ns/op 123.500\n")); err != nil || v != 123.5 {
		t.Errorf("parseNsOp = %v, %v", v, err)
	}
	for _, bad := range []string{"", "ns/op", "ns/op x", "ns/op -1", "op 1"} {
		if _, err := parseNsOp([]byte(bad)); err == nil {
			t.Errorf("parseNsOp(%q): no error", bad)
		}
	}
}

func TestCountEvents(t *testing.T) {
	in := `{"kind":"sensor","uid":0,"gid":0,"message":"started: tier full: ok"}
{"kind":"file","uid":0,"gid":0,"cgroup_id":7,"path":"/x","op":"write"}
{"kind":"file","uid":0,"gid":0,"cgroup_id":7,"path":"/x","op":"write"}
{"kind":"exec","uid":0,"gid":0,"cgroup_id":7}
{"kind":"bind","uid":0,"gid":0,"cgroup_id":9}
{"kind":"sensor","uid":0,"gid":0,"message":"events lost","counts":{"ring_full":4,"reader_queue_full":1}}
`
	c, err := countEvents(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if c.first != "started: tier full: ok" || c.byCgroup[7] != 3 || c.files[7] != 2 || c.byCgroup[9] != 1 || c.files[9] != 0 || c.lost != 5 {
		t.Errorf("countEvents = %+v", c)
	}
}

func TestGoalCells(t *testing.T) {
	for _, c := range []struct {
		workload, placement string
		with                float64
		want                string
	}{
		{"open-write+close", "outside", 103, "≤ 1.03|MET"},
		{"open-write+close", "outside", 104, "≤ 1.03|NOT MET"},
		{"open-write+close", "inside", 125, "≤ 1.25|MET"},
		{"open+close", "inside", 126, "≤ 1.25|NOT MET"},
		{"fork+exec", "outside", 110, "≤ 1.03|NOT MET"},
		{"fork+exec", "inside", 300, "|"},
	} {
		r := result{workload: c.workload, placement: c.placement, without: []float64{100}, with: []float64{c.with}, events: []int{0}, lost: []uint64{0}}
		cells := r.cells()
		if got := strings.Join(cells[len(cells)-2:], "|"); got != c.want {
			t.Errorf("%s %s at %.0f/100: goal cells %q, want %q", c.workload, c.placement, c.with, got, c.want)
		}
	}
}

func TestFormatProgramCosts(t *testing.T) {
	placements := []placement{{name: "outside"}, {name: "inside"}}
	costs := map[string]map[string]progCost{
		floorName:      {"outside": {runs: 100, ns: 3600}, "inside": {runs: 100, ns: 3700}},
		"rf_sys_enter": {"outside": {runs: 100, ns: 4700}, "inside": {runs: 100, ns: 9000}},
		"rf_bind4":     {"inside": {runs: 0, ns: 0}},
	}
	// rows returns the table's rows, each as its cells joined by "|".
	rows := func(table string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(table, "\n") {
			m[strings.Join(strings.Fields(l), "|")] = true
		}
		return m
	}
	got := rows(formatProgramCosts(costs, placements))
	for _, want := range []string{
		"rf_sys_enter|outside|100|47.0|≤|46.0|NOT|MET",
		"rf_sys_enter|inside|100|90.0",
		floorName + "|outside|100|36.0",
		floorName + "|inside|100|37.0",
	} {
		if !got[want] {
			t.Errorf("program table lacks row %q: %v", want, got)
		}
	}
	for r := range got {
		if strings.HasPrefix(r, "rf_bind4") {
			t.Errorf("a program that never ran is listed: %q", r)
		}
	}
	costs["rf_sys_enter"]["outside"] = progCost{runs: 100, ns: 4600}
	if got := rows(formatProgramCosts(costs, placements)); !got["rf_sys_enter|outside|100|46.0|≤|46.0|MET"] {
		t.Errorf("at the goal, not MET: %v", got)
	}
}
