package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"
	"time"

	"github.com/ringfence/ringfence/sensor"
	"github.com/ringfence/ringfence/sensor/sink"
	"github.com/ringfence/ringfence/sensor/status"
)

type repeated []string

func (r *repeated) String() string     { return fmt.Sprint(*r) }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func runCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var watch repeated
	fs.Var(&watch, "watch-cgroup", "watch the processes of this cgroup v2 `DIR` and its descendants (repeatable; absolute or relative to the cgroup2 mount)")
	create := fs.Bool("create-cgroup", false, "create the --watch-cgroup directories that do not exist")
	statusPath := fs.String("status-file", status.DefaultPath, "where to publish the status that `ringfence status` reads")
	ringMiB := fs.Uint("ring-mib", 16, "size of the kernel event ring in MiB (a power of two)")
	stdoutSink := fs.Bool("stdout", true, "write events as JSON lines on stdout")
	interval := fs.Duration("interval", 2*time.Second, "how often counters are read and the status published")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ringfence run: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *ringMiB == 0 || *ringMiB&(*ringMiB-1) != 0 || *ringMiB > 1024 {
		fmt.Fprintf(stderr, "ringfence run: --ring-mib: %d is not a power of two between 1 and 1024\n", *ringMiB)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg := sensor.Config{
		WatchCgroups:  watch,
		CreateCgroups: *create,
		RingBytes:     uint32(*ringMiB) << 20,
		StatusPath:    *statusPath,
		Interval:      *interval,
		Version:       version,
		Logger:        log,
	}
	if *stdoutSink {
		cfg.Sinks = append(cfg.Sinks, sink.NewJSONLines(stdout))
	}
	s, err := sensor.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "ringfence run: %v\n", err)
		return 1
	}
	p := s.Probe()
	log.Info("sensor started", "tier", p.Tier, "reason", p.Reason, "watched_cgroups", len(watch))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := s.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "ringfence run: %v\n", err)
		return 1
	}
	log.Info("sensor stopped")
	return 0
}
