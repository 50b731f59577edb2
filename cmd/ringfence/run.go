package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/sensor"
	"github.com/ringfence/ringfence/sensor/api"
	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/kernel"
	"github.com/ringfence/ringfence/sensor/kube"
	"github.com/ringfence/ringfence/sensor/metrics"
	"github.com/ringfence/ringfence/sensor/sink"
	"github.com/ringfence/ringfence/sensor/store"
)

type repeated []string

func (r *repeated) String() string     { return fmt.Sprint(*r) }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// runFlags are the daemon's settings.
type runFlags struct {
	watch         repeated
	create        bool
	storeDir      string
	storeMaxAge   time.Duration
	storeMaxBytes int64
	apiSocket     string
	metricsAddr   string
	healthSocket  string
	ringMiB       uint
	stdout        bool
	interval      time.Duration
	memoryLimit   int64
	containerd    string
	grace         time.Duration
	parents       repeated
	holdTimeout   time.Duration
	policies      repeated
	runtimeBins   repeated
	allowEmpty    bool
	mapEntries    uint
	bpffs         string
	standby       bool
	kube          kube.Flags // --kubernetes, --kubeconfig, --node-name, --pod-wait
}

func parseRunFlags(args []string, stderr io.Writer) (*runFlags, error) {
	f := &runFlags{}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&f.policies, "policy", "RuntimePolicy `FILE` or directory of *.yaml files (repeatable); read again on SIGHUP and when it changes")
	fs.BoolVar(&f.allowEmpty, "allow-empty-policy", false, "let --policy paths that hold no policy (an emptied directory) remove every policy; refused otherwise")
	fs.Var(&f.watch, "watch-cgroup", "watch the processes of this cgroup v2 `DIR` and its descendants (repeatable; absolute or relative to the cgroup2 mount)")
	fs.BoolVar(&f.create, "create-cgroup", false, "create the --watch-cgroup directories that do not exist")
	fs.StringVar(&f.storeDir, "store", defaultStore, "event store directory (empty: no store)")
	fs.DurationVar(&f.storeMaxAge, "store-max-age", 7*24*time.Hour, "drop stored events older than this (0: keep)")
	fs.Int64Var(&f.storeMaxBytes, "store-max-bytes", 1<<30, "keep the store (segments and indexes) within this many bytes, at least 4 MiB (0: no limit)")
	fs.StringVar(&f.containerd, "containerd-socket", "/run/containerd/containerd.sock", "containerd socket: its containers are watched from creation (empty: none)")
	fs.DurationVar(&f.grace, "container-grace", 5*time.Minute, "how long a removed container still names its late events")
	fs.Var(&f.parents, "container-parent", "cgroup (relative to the cgroup2 mount) below which the runtime creates containers (repeatable; default: default, k8s.io, kubepods, kubepods.slice)")
	fs.Var(&f.runtimeBins, "runtime-binary", "the container runtime's `PROGRAM` on the host (repeatable; default: runc on PATH): its re-exec of itself in a new container runs on while the container is held")
	fs.DurationVar(&f.holdTimeout, "hold-timeout", 2*time.Second, "longest a new container's first exec waits for the runtime to name the container; after it, a container its cgroup path names runs under its policies, one nobody names stays held until it is named")
	fs.StringVar(&f.apiSocket, "api-socket", api.DefaultSocket, "unix socket of the daemon API (mode 0600)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "127.0.0.1:9464", "Prometheus metrics, /healthz and /readyz (empty: off)")
	fs.StringVar(&f.healthSocket, "health-socket", "", "unix socket `PATH` where this process alone answers /healthz and /readyz, in standby too (`ringfence health`; the DaemonSet's probes): unlike --metrics-addr, never shared with another daemon (empty: off)")
	fs.StringVar(&f.bpffs, "bpffs", kernel.DefaultPinDir, "bpffs `DIR` where the programs and maps are pinned: the rules stay in force while no daemon runs, and the next daemon adopts them (empty: nothing pinned, the rules go with the process)")
	fs.BoolVar(&f.standby, "standby", false, "when another daemon holds the --bpffs pins, wait for it to stop and take over (a rolling update) instead of exiting with an error")
	fs.UintVar(&f.mapEntries, "kernel-map-entries", kernel.DefaultMapEntries, "capacity of each kernel map that grows with containers and cgroups (watched and pending cgroups, members, roots, addresses, syscall counters); status and /metrics show their use")
	fs.UintVar(&f.ringMiB, "ring-mib", 16, "size of the kernel event ring in MiB (a power of two)")
	fs.BoolVar(&f.stdout, "stdout", true, "write events as JSON lines on stdout")
	fs.DurationVar(&f.interval, "interval", 2*time.Second, "how often loss and syscall counters are read")
	fs.Int64Var(&f.memoryLimit, "memory-limit-mib", 100, "soft limit of the Go heap in MiB: the collector works harder near it (0: none)")
	f.kube.Register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := f.kube.Validate(); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case f.ringMiB == 0 || f.ringMiB&(f.ringMiB-1) != 0 || f.ringMiB > 1024:
		return nil, fmt.Errorf("--ring-mib: %d is not a power of two between 1 and 1024", f.ringMiB)
	case f.mapEntries < 1024 || f.mapEntries > 1<<22:
		return nil, fmt.Errorf("--kernel-map-entries: %d is not between 1024 and %d", f.mapEntries, 1<<22)
	case f.apiSocket == "":
		return nil, errors.New("--api-socket: a socket path is required")
	case f.storeMaxAge < 0:
		return nil, fmt.Errorf("--store-max-age: %s is negative", f.storeMaxAge)
	case f.storeMaxBytes < 0:
		return nil, fmt.Errorf("--store-max-bytes: %d is negative", f.storeMaxBytes)
	case f.storeMaxBytes > 0 && f.storeMaxBytes < store.MinMaxBytes:
		return nil, fmt.Errorf("--store-max-bytes: %d is below %d (4 MiB), the smallest size that holds a sealed segment beside the one being written", f.storeMaxBytes, store.MinMaxBytes)
	}
	if f.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(f.metricsAddr); err != nil {
			return nil, fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	return f, nil
}

func runCmd(args []string, stdout, stderr io.Writer) int {
	f, err := parseRunFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "ringfence run: %v\n", err)
		}
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if f.memoryLimit > 0 {
		debug.SetMemoryLimit(f.memoryLimit << 20)
	}
	if err := runDaemon(f, stdout, log); err != nil {
		fmt.Fprintf(stderr, "ringfence run: %v\n", err)
		return 1
	}
	log.Info("sensor stopped")
	return 0
}

// failpointEnv names failures a test can ask the daemon for:
// RINGFENCE_FAILPOINT=attach:PROGRAM makes that program's attach fail.
const failpointEnv = "RINGFENCE_FAILPOINT"

// failpoint returns the argument of the failpoint kind asked for, if any.
func failpoint(kind string) string {
	k, arg, ok := strings.Cut(os.Getenv(failpointEnv), ":")
	if !ok || k != kind {
		return ""
	}
	return arg
}

// flagError names the flag of a setting the sensor refused.
func flagError(err error) error {
	var ce *sensor.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	flag := map[string]string{
		sensor.FieldWatchCgroups:   "--watch-cgroup",
		sensor.FieldCreateCgroups:  "--create-cgroup",
		sensor.FieldRuntimeParents: "--container-parent",
		sensor.FieldRuntimeBinary:  "--runtime-binary",
		sensor.FieldPolicies:       "--policy",
	}[ce.Field]
	if flag == "" {
		return err
	}
	return fmt.Errorf("%s: %w", flag, ce.Err)
}

// runDaemon wires the sensor, the container runtime, the store, the API and
// the metrics, and runs them until SIGTERM or SIGINT.
func runDaemon(f *runFlags, stdout io.Writer, log *slog.Logger) (err error) {
	sig, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stopSignals()
	// ctx is the daemon's life: SIGTERM or SIGINT ends it at once, but for
	// an agent whose pod is deleted, which hands over first (handOver).
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	stopAtOnce := context.AfterFunc(sig, stop)
	hup := make(chan os.Signal, 1) // also in standby: a SIGHUP must not end it
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// The health socket first: it says what this process is doing, from
	// its start (its path is the pod's own, not the daemon's in charge).
	var health *healthSwitch
	if f.healthSocket != "" {
		health = newHealthSwitch()
		if err := serveHealth(ctx, f.healthSocket, health); err != nil {
			return fmt.Errorf("--health-socket: %w", err)
		}
	}
	// The pins' lock next, before the store and the sockets, which the
	// daemon holding it (the one a rolling update replaces) still uses.
	var lock *kernel.PinLock
	if f.bpffs != "" {
		if lock, err = takePins(ctx, f, health, log); err != nil || lock == nil {
			return err // lock nil: stopped in standby, nothing touched
		}
		defer func() { err = errors.Join(err, lock.Release()) }()
	}
	hub := api.NewHub()
	cfg := sensor.Config{
		WatchCgroups:     f.watch,
		CreateCgroups:    f.create,
		RingBytes:        uint32(f.ringMiB) << 20,
		MapEntries:       uint32(f.mapEntries),
		PinDir:           f.bpffs,
		PinLock:          lock,
		FailAttach:       failpoint("attach"),
		Interval:         f.interval,
		Version:          version,
		Logger:           log,
		Sinks:            []sensor.Sink{hub},
		StorePath:        f.storeDir,
		Policies:         f.policies,
		AllowEmptyPolicy: f.allowEmpty,
		RuntimeSocket:    f.containerd,
	}
	if f.stdout {
		lines := sink.NewJSONLines(stdout)
		defer lines.Close() // after the sensor's last event
		cfg.Sinks = append(cfg.Sinks, lines)
	}
	if f.storeDir != "" {
		w, err := store.OpenWriter(f.storeDir, store.Options{MaxAge: f.storeMaxAge, MaxBytes: f.storeMaxBytes})
		if err != nil {
			return err
		}
		cfg.Store = store.NewSink(w, store.SinkOptions{Logger: log})
		defer func() { err = errors.Join(err, cfg.Store.Close()) }()
	}
	var s *sensor.Sensor
	var watcher *container.Watcher
	if f.containerd != "" {
		// The watcher runs only once s exists, so its callback can use it.
		watcher, err = container.NewWatcher(container.WatcherConfig{
			Socket:  f.containerd,
			Logger:  log,
			Cache:   container.NewCache(container.CacheConfig{Grace: f.grace}),
			OnStart: func(i container.Info) { s.ContainerStarted(i) },
			OnGone: func(i container.Info) {
				if err := s.ContainerGone(i); err != nil {
					log.Error("container gone", "id", i.ID, "error", err)
				}
			},
			OnDisconnect: func() { s.RuntimeDown() },
		})
		if err != nil {
			return fmt.Errorf("--containerd-socket: %w", err)
		}
		cfg.Containers = watcher.Cache()
		cfg.Runtime = watcher
		cfg.HoldTimeout = f.holdTimeout
		cfg.RuntimeParents = f.parents
		if len(cfg.RuntimeParents) == 0 {
			cfg.RuntimeParents = []string{"default", "k8s.io", "kubepods", "kubepods.slice"}
		}
		cfg.RuntimeBinaries = f.runtimeBins
		if len(cfg.RuntimeBinaries) == 0 {
			if runc, err := exec.LookPath("runc"); err == nil {
				cfg.RuntimeBinaries = []string{runc}
			}
		}
	}
	ln, err := api.Listen(f.apiSocket)
	if err != nil {
		return err
	}
	defer ln.Close()
	var mln net.Listener
	if f.metricsAddr != "" {
		if mln, err = listenShared(ctx, f.metricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer mln.Close()
	}
	if s, err = sensor.New(cfg); err != nil {
		return flagError(err)
	}
	// Loading parsed the kernel's BTF (tens of MB); give it back now.
	debug.FreeOSMemory()
	p := s.Probe()
	log.Info("sensor started", "tier", p.Tier, "reason", p.Reason, "watched_cgroups", len(f.watch), "containerd", f.containerd, "store", f.storeDir, "api", f.apiSocket, "metrics", f.metricsAddr)

	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading policy")
				s.ReloadPolicies() // refusals are logged and kept in status
			}
		}
	})
	if watcher != nil {
		wg.Go(func() { watcher.Run(ctx) })
	}
	var ready metrics.Source = s
	var collectors []prometheus.Collector
	var agent *kube.Agent
	if f.kube.Enabled { // RuntimePolicy objects and pod labels: sensor/kube
		if agent, err = kube.Start(ctx, f.kube, s, log); err != nil {
			return err
		}
		ready, collectors = readyWhen{s, agent.Ready}, agent.Collectors()
		if lock != nil && f.kube.PodUID != "" && stopAtOnce() {
			stopHandOver := context.AfterFunc(sig, func() {
				handOver(agent, s, f, log)
				stop()
			})
			// Not on a return without a signal (stopSignals ends sig).
			defer stopHandOver()
		}
	}
	health.set(metrics.HealthHandler(ready.Ready))
	wg.Go(func() {
		if err := api.NewServer(s, hub, f.storeDir, log).Serve(ctx, ln); err != nil {
			log.Error("api server", "error", err)
		}
	})
	if mln != nil {
		reg := metrics.NewRegistry(s, version)
		reg.MustRegister(collectors...)
		srv := &http.Server{Handler: metrics.Handler(reg, ready), ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() { srv.Serve(mln) })
		context.AfterFunc(ctx, func() { srv.Close() })
	}
	err = s.Run(ctx)
	stop()
	wg.Wait()
	if agent != nil && lock != nil {
		// Deleting the DaemonSet is the uninstall: nothing of ringfence
		// stays in the kernel, nothing stays held. Any other stop leaves
		// the rules in force for the next daemon.
		del, why := agent.UninstallOnStop(context.Background())
		log.Info("stopping: "+why, "uninstall", del)
		if del {
			err = errors.Join(err, uninstallPins(f.bpffs, lock, log))
		}
	}
	return err
}

// handOver runs when the agent is told to stop: unless its DaemonSet is
// being deleted (an uninstall), its pod is going (deleted, evicted, a
// rolling update) and the DaemonSet makes the next one on this node at
// once. The agent keeps enforcing until that pod is exempt, at most
// --handover-wait: a pod made once no daemon runs would be held by the
// pinned programs, the next agent's own containers with it, and nothing
// would let them go.
//
// --handover-wait bounds it whole; a second SIGTERM or SIGINT ends it.
func handOver(agent *kube.Agent, s *sensor.Sensor, f *runFlags, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), f.kube.HandoverWait)
	defer cancel()
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(again)
	go func() {
		select {
		case <-again:
			cancel()
		case <-ctx.Done():
		}
	}()
	if del, _ := agent.UninstallOnStop(ctx); del {
		return
	}
	start := time.Now()
	ok, saw := agent.AwaitSuccessor(ctx, f.kube.PodUID, s.PodExempt)
	if ok {
		log.Info("stopping: handed over: "+saw, "waited", time.Since(start).Round(time.Millisecond))
		return
	}
	log.Warn("stopping: "+saw+": a pod of the DaemonSet made after this agent has gone is held until a daemon runs (ringfence uninstall on the node lets it go)", "waited", time.Since(start).Round(time.Millisecond))
}

// uninstallPins removes what the daemon pinned (it holds the lock) and lets
// go every process the kernel held.
func uninstallPins(dir string, lock *kernel.PinLock, log *slog.Logger) error {
	removed, pending, err := kernel.UninstallLocked(dir, lock)
	let, lerr := letGo(pending)
	log.Info("uninstalled", "bpffs", dir, "pins_removed", len(removed), "held_processes_let_go", len(let))
	return errors.Join(err, lerr)
}

// takePins takes the lock of the pin directory. While another daemon holds
// it, this one is refused, or with --standby (on a cluster, where the agent
// a rolling update replaces runs until this one is ready) waits in standby:
// it first checks that it could load its programs (a daemon that could not
// take over never reports ready), then answers /healthz, and /readyz as
// ready while the pinned set enforces, and takes the lock when the other
// stops. It returns a nil lock
// when stopped while waiting.
func takePins(ctx context.Context, f *runFlags, health *healthSwitch, log *slog.Logger) (*kernel.PinLock, error) {
	lock, err := kernel.LockPins(ctx, f.bpffs, false)
	if !errors.Is(err, kernel.ErrPinsInUse) {
		return lock, err
	}
	if !f.standby {
		return nil, fmt.Errorf("--bpffs: %w (one daemon per node: stop it first, or pass --standby to wait for it and take over)", err)
	}
	if _, err := kernel.ProbeTier(); err != nil {
		return nil, fmt.Errorf("capability probe: %w", err)
	}
	if err := kernel.ProbeLoad(); err != nil {
		return nil, fmt.Errorf("capability probe: %w", err)
	}
	health.set(standbyHandler(f.bpffs, "standby"))
	log.Info("standby: another daemon holds the pins; waiting for it to stop", "bpffs", f.bpffs, "error", err)
	if f.metricsAddr != "" {
		// The address is the other daemon's too: both listen (SO_REUSEPORT)
		// and either answers for what is in force.
		ln, err := listenShared(ctx, f.metricsAddr)
		if err != nil {
			log.Warn("standby: --metrics-addr taken, the daemon in charge answers on it", "error", err)
		} else {
			srv := &http.Server{Handler: standbyHandler(f.bpffs, "standby"), ReadHeaderTimeout: 5 * time.Second}
			go srv.Serve(ln)
			defer srv.Close()
		}
	}
	start := time.Now()
	lock, err = kernel.LockPins(ctx, f.bpffs, true)
	if ctx.Err() != nil {
		log.Info("stopped in standby: the pins are the other daemon's, nothing was touched")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	log.Info("the daemon that held the pins stopped: taking over", "standby", time.Since(start).Round(time.Millisecond))
	health.set(standbyHandler(f.bpffs, "taking over"))
	return lock, nil
}

// standbyHandler is the HTTP side of a daemon in standby, or taking over
// (stage): ready while the pinned set enforces.
func standbyHandler(bpffs, stage string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if stage == "standby" {
			w.Write([]byte("ok: standby, waiting for the daemon holding the pins to stop\n"))
			return
		}
		fmt.Fprintf(w, "ok: %s\n", stage)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := kernel.PinnedInForce(bpffs)
		if !ok {
			http.Error(w, "not ready: "+stage+", "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ok: %s, %s\n", stage, why)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP ringfence_standby 1 while the daemon waits for the one holding the pins to stop.\n# TYPE ringfence_standby gauge\nringfence_standby 1\n")
	})
	return mux
}

// listenShared listens on a TCP address with SO_REUSEPORT: the daemon a
// rolling update starts listens beside the one it replaces.
func listenShared(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(ctx, "tcp", addr)
}

// readyWhen is the sensor, ready only once also reports true as well (the
// RuntimePolicy objects are applied).
type readyWhen struct {
	metrics.Source
	also func() bool
}

func (r readyWhen) Ready() bool { return r.Source.Ready() && r.also() }
