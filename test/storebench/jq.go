package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/ringfence/ringfence/sensor/store"
)

// jqCompare asks jq the same question over the same events as JSON lines:
// one container's events in one whole hour.
func jqCompare(c *corpus, dir string, q store.Query) (time.Duration, int, error) {
	if _, err := exec.LookPath("jq"); err != nil {
		return 0, 0, fmt.Errorf("jq is not installed (make deps installs it)")
	}
	path := filepath.Join(dir, "events.jsonl")
	if err := writeJSONLines(c, path); err != nil {
		return 0, 0, err
	}
	defer os.Remove(path)
	hour := q.Since.UTC().Format("2006-01-02T15")
	if !q.Until.Equal(q.Since.Add(time.Hour)) || q.Since.Truncate(time.Hour) != q.Since {
		return 0, 0, fmt.Errorf("the jq comparison needs a whole-hour window")
	}
	filter := fmt.Sprintf(`select(.container.name == %q and .time[0:13] == %q)`, q.Container, hour)
	start := time.Now()
	cmd := exec.Command("jq", "-c", filter, path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	n := 0
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		n++
	}
	if err := cmd.Wait(); err != nil {
		return 0, 0, fmt.Errorf("jq: %w", err)
	}
	elapsed := time.Since(start)
	st, _ := os.Stat(path)
	fmt.Printf("jq: %d events in %s over %d MB of JSON lines\n", n, elapsed.Round(time.Millisecond), st.Size()>>20)
	return elapsed, n, nil
}
