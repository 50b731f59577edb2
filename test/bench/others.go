package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// otherSensors lists the pids of ringfence processes: run before a
// measurement, when the bench's own sensor is stopped, any is someone else's
// and would load its programs into the run.
func otherSensors() []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/comm")
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(d)
		if err == nil && strings.TrimSpace(string(b)) == "ringfence" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitNoOtherSensor waits up to limit for foreign sensors to exit and
// returns those still running.
func waitNoOtherSensor(ctx context.Context, limit time.Duration) []int {
	deadline := time.Now().Add(limit)
	for {
		pids := otherSensors()
		if len(pids) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return pids
		}
		time.Sleep(200 * time.Millisecond)
	}
}
