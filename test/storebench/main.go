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
	"strings"
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
	// Two: one process's open+close pairs, each two syscalls and a path
	// lookup, reach about 470,000-497,000 events/s on the faster machines
	// of this kind, so one generator would measure itself, not the pipeline.
	flag.IntVar(&cfg.pipeGens, "pipeline-generators", 2, "generator processes of the pipeline's load")
	flag.IntVar(&cfg.pipeRate, "pipeline-rate", 500_000, "distinct file events a second the generators ask together")
	flag.IntVar(&cfg.pipeSecs, "pipeline-seconds", 10, "how long the pipeline's load lasts")
	flag.IntVar(&cfg.pipeRingMiB, "pipeline-ring-mib", 16, "the daemon's ring under the pipeline's load, MiB (16: its default)")
	parts := flag.String("parts", "pipeline,queries,memory", "parts to run, comma-separated: pipeline, queries, memory")
	flag.Parse()
	cfg.parts = map[string]bool{}
	for _, p := range strings.Split(*parts, ",") {
		if p != "pipeline" && p != "queries" && p != "memory" {
			fmt.Fprintf(os.Stderr, "storebench: -parts: unknown part %q\n", p)
			os.Exit(2)
		}
		cfg.parts[p] = true
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "storebench:", err)
		os.Exit(1)
	}
}
