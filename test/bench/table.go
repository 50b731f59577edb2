package main

import (
	"fmt"
	"strings"
)

// result is one table row: every round's measurement of one workload in one
// placement.
type result struct {
	workload  string
	placement string
	without   []float64 // ns/op per round, no sensor
	with      []float64 // ns/op per round, sensor running
	floor     []float64 // ns/op per round, only the no-op program on sys_enter (outside only)
	events    []int     // per with-run: events carrying the child's cgroup id
	lost      []uint64  // per with-run: events the sensor reported lost
}

var tableHeader = []string{"workload", "placement", "without ns/op", "with ns/op", "ratio", "spread", "no-op only", "events", "lost", "goal", "met"}

// goal is the most the sensor may cost a workload in a placement, as a
// ratio of the medians: a process it does not watch should not notice it,
// one it watches pays for an event per open; 0 where none is set.
func goal(workload, placement string) float64 {
	switch {
	case placement == "outside":
		return 1.03
	case workload == "open+close" || workload == "open-write+close":
		return 1.25
	}
	return 0
}

// cells renders r: medians, the ratio of the medians, the min–max of the
// per-round ratios, the ratio of the no-op's runs to the runs without (the
// floor of any program on sys_enter), and the median event and loss counts
// of the with-runs.
func (r result) cells() []string {
	wo, wi := median(r.without), median(r.with)
	lo, hi := spread(ratios(r.with, r.without))
	lost := make([]int, len(r.lost))
	for i, l := range r.lost {
		lost[i] = int(l)
	}
	floor := ""
	if len(r.floor) > 0 {
		floor = fmt.Sprintf("%.3f", median(r.floor)/wo)
	}
	goalCell, met := "", ""
	if g := goal(r.workload, r.placement); g > 0 {
		goalCell, met = fmt.Sprintf("≤ %.2f", g), metWord(wi/wo <= g)
	}
	return []string{
		r.workload,
		r.placement,
		fmt.Sprintf("%.1f", wo),
		fmt.Sprintf("%.1f", wi),
		fmt.Sprintf("%.3f", wi/wo),
		fmt.Sprintf("%.3f–%.3f", lo, hi),
		floor,
		fmt.Sprint(medianInt(r.events)),
		fmt.Sprint(medianInt(lost)),
		goalCell, met,
	}
}

// formatTable aligns rows under header: text columns to the left, numeric
// ones (all but the first two) to the right.
func formatTable(header []string, rows [][]string) string {
	width := make([]int, len(header))
	for _, row := range append([][]string{header}, rows...) {
		for i, c := range row {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	line := func(row []string) {
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i > 0 {
				b.WriteString("  ")
			}
			if i < 2 {
				b.WriteString(c)
				if i < len(row)-1 {
					b.WriteString(pad)
				}
			} else {
				b.WriteString(pad + c)
			}
		}
		b.WriteString("\n")
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
	return b.String()
}
