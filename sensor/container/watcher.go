package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/ringfence/ringfence/sensor/hostfs"
)

// Defaults of a WatcherConfig.
const (
	DefaultMinBackoff     = 250 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	DefaultResyncInterval = time.Minute
)

// callTimeout bounds each containerd call, so that a hung daemon shows up as
// a disconnection rather than a stuck watcher.
const callTimeout = 10 * time.Second

// WatcherConfig configures a Watcher.
type WatcherConfig struct {
	// Socket is containerd's address, e.g. /run/containerd/containerd.sock.
	Socket string
	// Cache receives the containers; NewCache's default when nil.
	Cache *Cache
	// OnStart is called once per container as soon as its cgroup exists:
	// when its task is created, before its entrypoint runs, or when a sync
	// finds it running. OnGone is called once when it exits or disappears.
	// Both run on the watcher's goroutine and must not block for long.
	OnStart func(Info)
	OnGone  func(Info)
	// OnDisconnect is called, on the watcher's goroutine, each time the
	// connection is lost or could not be made: nothing names containers
	// until it is back.
	OnDisconnect func()
	// Cgroup2 is the cgroup v2 mount; hostfs.Cgroup2Root's answer when empty.
	Cgroup2 string
	// ProcRoot is where procfs is mounted; /proc when empty.
	ProcRoot string
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts, which doubles from one to the other.
	MinBackoff, MaxBackoff time.Duration
	// ResyncInterval is how often a connected watcher lists all containers
	// again, to repair anything an event stream missed.
	ResyncInterval time.Duration
	// Logger receives connection changes and per-container errors;
	// discarded when nil.
	Logger *slog.Logger
}

// The status's reason before the first attempt ends, and once Run has
// returned.
const (
	notYetConnected = "not connected yet: the first attempt has not ended"
	stoppedReason   = "stopped: the watcher's context ended"
)

// Status is the watcher's connection state, for the daemon's status.
type Status struct {
	Socket    string `json:"socket"`
	Connected bool   `json:"connected"`
	// Version is the containerd version of the current or last connection.
	Version     string    `json:"version,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Reconnects counts the connections made after the first.
	Reconnects int       `json:"reconnects"`
	LastSync   time.Time `json:"last_sync,omitzero"`
	// Containers is how many running containers the watcher knows.
	Containers int `json:"containers"`
}

// Watcher follows a containerd: it lists the containers of every namespace,
// then keeps its Cache current from the event stream, reconnecting with
// backoff and listing again whenever the connection is lost.
type Watcher struct {
	cfg   WatcherConfig
	cache *Cache
	log   *slog.Logger

	mu       sync.Mutex
	status   Status
	running  bool
	connects int

	// Owned by the Run goroutine: the containers announced with OnStart and
	// not yet gone, and the cgroup id each was announced with.
	live map[ref]uint64
}

// ref names a container in containerd.
type ref struct{ ns, id string }

// NewWatcher checks cfg and returns a Watcher; Run starts it.
func NewWatcher(cfg WatcherConfig) (*Watcher, error) {
	if cfg.Socket == "" {
		return nil, errors.New("container watcher: no containerd socket")
	}
	if cfg.Cgroup2 == "" {
		m, err := hostfs.Cgroup2Root()
		if err != nil {
			return nil, fmt.Errorf("container watcher: %w", err)
		}
		cfg.Cgroup2 = m
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = DefaultResyncInterval
	}
	if cfg.Cache == nil {
		cfg.Cache = NewCache(CacheConfig{})
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Watcher{
		cfg:    cfg,
		cache:  cfg.Cache,
		log:    cfg.Logger.With("containerd", cfg.Socket),
		status: Status{Socket: cfg.Socket, LastError: notYetConnected},
		live:   map[ref]uint64{},
	}, nil
}

// Cache returns the cache the watcher fills.
func (w *Watcher) Cache() *Cache { return w.cache }

// Status returns the current connection state.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

// Run watches until ctx ends, then returns nil. While containerd is
// unreachable it retries with backoff; the cache keeps what it had, gone
// containers still expiring. Run may be called once.
func (w *Watcher) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.running {
		w.mu.Unlock()
		return errors.New("container watcher: Run called twice")
	}
	w.running = true
	w.mu.Unlock()

	swept := make(chan struct{})
	go func() {
		defer close(swept)
		w.sweep(ctx)
	}()
	// Every return below follows the end of ctx, which ends the sweeper.
	defer func() { <-swept }()

	backoff := w.cfg.MinBackoff
	for {
		connected, err := w.session(ctx)
		if ctx.Err() != nil {
			w.setDisconnected(errors.New(stoppedReason))
			return nil
		}
		w.setDisconnected(err)
		if connected {
			w.log.Warn("containerd connection lost", "err", err)
			backoff = w.cfg.MinBackoff
		} else {
			w.log.Debug("containerd unreachable", "err", err, "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			w.setDisconnected(errors.New(stoppedReason))
			return nil
		case <-time.After(backoff):
		}
		if !connected {
			backoff = min(2*backoff, w.cfg.MaxBackoff)
		}
	}
}

// sweep drops expired gone containers while no events cause writes.
func (w *Watcher) sweep(ctx context.Context) {
	t := time.NewTicker(max(w.cache.grace/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.cache.Sweep()
		}
	}
}

// session connects, syncs and follows events until the connection fails or
// ctx ends. connected reports whether it got as far as a first sync.
func (w *Watcher) session(ctx context.Context) (connected bool, err error) {
	if err := probe(w.cfg.Socket); err != nil {
		return false, err
	}
	cl, err := client.New(w.cfg.Socket, client.WithTimeout(callTimeout))
	if err != nil {
		return false, err
	}
	defer cl.Close()

	vctx, cancel := context.WithTimeout(ctx, callTimeout)
	v, err := cl.Version(vctx)
	cancel()
	if err != nil {
		return false, fmt.Errorf("containerd version: %w", err)
	}

	// Subscribed before the sync lists anything, so that what changes
	// during the sync arrives as events; applying both is idempotent. The
	// client opens the stream in the background, so a change in its first
	// instants can still slip through: the periodic resync repairs that.
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	events, errs := cl.Subscribe(sctx, eventFilters()...)

	if err := w.sync(ctx, cl); err != nil {
		return false, err
	}
	w.setConnected(v.Version)
	w.log.Info("containerd connected", "version", v.Version, "containers", len(w.live))

	resync := time.NewTicker(w.cfg.ResyncInterval)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-errs:
			if err == nil {
				err = errors.New("event stream closed")
			}
			return true, fmt.Errorf("containerd events: %w", err)
		case env := <-events:
			w.handle(ctx, cl, env)
		case <-resync.C:
			if err := w.sync(ctx, cl); err != nil {
				return true, err
			}
		}
	}
}

// probe dials the socket once. gRPC would wait out its connect timeout on a
// socket nobody listens on; a plain dial fails at once.
func probe(socket string) error {
	conn, err := net.DialTimeout("unix", strings.TrimPrefix(socket, "unix://"), callTimeout)
	if err != nil {
		return err
	}
	return conn.Close()
}

func (w *Watcher) setConnected(version string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.connects > 0 {
		w.status.Reconnects++
	}
	w.connects++
	w.status.Connected = true
	w.status.Version = version
	if w.status.LastError == notYetConnected {
		// Only a disconnected status is waiting for its first attempt;
		// a real error stays, as the cause of the last disconnection.
		w.status.LastError = ""
	}
}

// setDisconnected records why the watcher is not connected: a status that
// says "disconnected" always says why.
func (w *Watcher) setDisconnected(err error) {
	if err == nil {
		err = errors.New("connection ended without an error")
	}
	w.mu.Lock()
	w.status.Connected = false
	w.status.LastError = err.Error()
	w.status.LastErrorAt = time.Now()
	w.mu.Unlock()
	if w.cfg.OnDisconnect != nil {
		w.cfg.OnDisconnect()
	}
}

// setLive publishes the count of running containers after a change, and
// the time of a completed sync.
func (w *Watcher) setLive(synced bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.status.Containers = len(w.live)
	if synced {
		w.status.LastSync = time.Now()
	}
}
