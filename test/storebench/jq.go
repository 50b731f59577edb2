package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// jqRun asks jq a question over the corpus as JSON lines and checks that
// it finds the events the store did.
func jqRun(path, filter string, want int) (time.Duration, error) {
	if _, err := exec.LookPath("jq"); err != nil {
		return 0, fmt.Errorf("jq is not installed (make deps installs it)")
	}
	start := time.Now()
	n, err := countLines(exec.Command("jq", "-c", filter, path))
	if err != nil {
		return 0, fmt.Errorf("jq: %w", err)
	}
	elapsed := time.Since(start)
	if n != want {
		return 0, fmt.Errorf("jq found %d events, the store %d: not the same answer", n, want)
	}
	st, _ := os.Stat(path)
	fmt.Printf("jq: %d events in %s over %d MB of JSON lines\n", n, elapsed.Round(time.Millisecond), st.Size()>>20)
	return elapsed, nil
}

// countLines runs cmd and counts the lines it prints.
func countLines(cmd *exec.Cmd) (int, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	n := 0
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		n++
	}
	return n, cmd.Wait()
}
