// Command storebench measures the event store and the daemon against their
// targets, side by side in one run: ingest rate; the latency of whole
// `ringfence events` processes asking a quiet and a busy container's
// events, with and without a time window, of stores of 300,000 and ten
// million events kept open as a running daemon keeps them; the same
// questions asked of jq; and the daemon's memory.
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
	flag.IntVar(&cfg.events, "events", 10_000_000, "events in the large store")
	flag.IntVar(&cfg.smallEvents, "small-events", 300_000, "events in the small store")
	flag.StringVar(&cfg.dir, "dir", "", "work directory (default: a temporary one, removed afterwards)")
	flag.StringVar(&cfg.ringfence, "ringfence", "build/ringfence", "ringfence binary, for the queries and the memory measurement")
	flag.IntVar(&cfg.queries, "queries", 21, "query repetitions")
	flag.BoolVar(&cfg.skipJQ, "skip-jq", false, "do not run the jq comparison")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "storebench:", err)
		os.Exit(1)
	}
}
