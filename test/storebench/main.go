// Command storebench measures the event store and the daemon against their
// targets, side by side in one run: ingest rate, query latency over ten
// million events, the same question asked of jq, and the daemon's memory.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	if os.Getenv(genEnv) != "" {
		os.Exit(runGenerator())
	}
	cfg := config{}
	flag.IntVar(&cfg.events, "events", 10_000_000, "events to store")
	flag.StringVar(&cfg.dir, "dir", "", "work directory (default: a temporary one, removed afterwards)")
	flag.StringVar(&cfg.ringfence, "ringfence", "build/ringfence", "sensor binary, for the memory measurement")
	flag.IntVar(&cfg.queries, "queries", 21, "query repetitions")
	flag.BoolVar(&cfg.skipJQ, "skip-jq", false, "do not run the jq comparison")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "storebench:", err)
		os.Exit(1)
	}
}
