package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/posture"
	"github.com/ringfence/ringfence/sensor/status"
	"github.com/ringfence/ringfence/sensor/store"
)

// DefaultSocket is where the daemon listens.
const DefaultSocket = "/run/ringfence/ringfence.sock"

// Backend is what the server asks the sensor.
type Backend interface {
	Snapshot() *status.Snapshot
	Watched() ([]uint64, error)
	Containers() []container.Info
	PoliciesOf(cgroup uint64) []string
	Posture() []posture.Report
}

// Container is one container as the API shows it.
type Container struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	RuntimeNamespace string            `json:"runtime_namespace,omitempty"`
	Image            string            `json:"image,omitempty"`
	ImageDigest      string            `json:"image_digest,omitempty"`
	Pod              string            `json:"pod,omitempty"`
	PodNamespace     string            `json:"namespace,omitempty"`
	Labels           map[string]string `json:"labels,omitempty"`
	Pid              uint32            `json:"pid,omitempty"`
	CgroupID         uint64            `json:"cgroup_id"`
	CgroupPath       string            `json:"cgroup_path,omitempty"`
	WatchedSince     time.Time         `json:"watched_since,omitzero"`
	Created          time.Time         `json:"created,omitzero"`
	Started          time.Time         `json:"started,omitzero"`
	Exited           time.Time         `json:"exited,omitzero"`
	// Policies names the policies that select it.
	Policies []string `json:"policies,omitempty"`
}

// Server serves the API.
type Server struct {
	backend  Backend
	hub      *Hub
	storeDir string
	log      *slog.Logger
}

// NewServer returns a server; storeDir may be empty when there is no store.
func NewServer(b Backend, hub *Hub, storeDir string, log *slog.Logger) *Server {
	return &Server{backend: b, hub: hub, storeDir: storeDir, log: log}
}

// Listen opens the unix socket at path, mode 0600; a directory it creates
// is mode 0700. A stale socket from a dead daemon is replaced; a live one is
// an error. Whatever the modes, Serve answers only root and the daemon's own
// user (checked with SO_PEERCRED).
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("api socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("api socket %s: another daemon is listening", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api socket: %w", err)
	}
	return ln, nil
}

// Serve answers requests on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/cgroups", s.cgroups)
	mux.HandleFunc("GET /v1/containers", s.containers)
	mux.HandleFunc("GET /v1/posture", s.posture)
	mux.HandleFunc("GET /v1/events", s.events)
	mux.HandleFunc("GET /v1/events/stream", s.stream)
	srv := &http.Server{Handler: rootOnly(mux), ReadHeaderTimeout: 5 * time.Second, ConnContext: withPeer,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.backend.Snapshot())
}

func (s *Server) cgroups(w http.ResponseWriter, _ *http.Request) {
	ids, err := s.backend.Watched()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, ids)
}

func (s *Server) containers(w http.ResponseWriter, _ *http.Request) {
	infos := s.backend.Containers()
	out := make([]Container, 0, len(infos))
	for _, i := range infos {
		out = append(out, Container{ID: i.ID, Name: i.Name, RuntimeNamespace: i.RuntimeNamespace, Image: i.Image, ImageDigest: i.ImageDigest,
			Pod: i.Pod, PodNamespace: i.PodNamespace, Labels: i.Labels, Pid: i.Pid, CgroupID: i.CgroupID, CgroupPath: i.CgroupPath,
			WatchedSince: i.WatchedSince, Created: i.Created, Started: i.Started, Exited: i.Exited, Policies: s.backend.PoliciesOf(i.CgroupID)})
	}
	writeJSON(w, out)
}

// posture answers with the CIS findings of each running container.
func (s *Server) posture(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.backend.Posture())
}

// QueryResult is the answer of GET /v1/events.
type QueryResult struct {
	Events    []json.RawMessage `json:"events"`
	Lost      map[string]uint64 `json:"lost,omitempty"`
	Truncated bool              `json:"truncated,omitempty"`
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q, err := DecodeQuery(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s.storeDir == "" {
		http.Error(w, "the daemon runs without an event store", http.StatusNotFound)
		return
	}
	rd, err := store.OpenReader(s.storeDir)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer rd.Close()
	res, err := rd.Query(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out := QueryResult{Events: make([]json.RawMessage, len(res.Events)), Lost: res.Lost, Truncated: res.Truncated}
	for i, m := range res.Events {
		out.Events[i] = m.JSON
	}
	writeJSON(w, out)
}

// stream sends matching live events as JSON lines until the client leaves.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	q, err := DecodeQuery(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	sub := s.hub.subscribe(q)
	defer s.hub.unsubscribe(sub)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case line := <-sub.ch:
			if _, err := w.Write(append(line, '\n')); err != nil {
				return
			}
			if len(sub.ch) == 0 {
				flusher.Flush()
			}
		case <-tick.C:
			if n := sub.takeDropped(); n > 0 {
				report := slowFollowerReport(n, time.Now())
				line, err := report.MarshalLine()
				if err != nil {
					return
				}
				if _, err := w.Write(append(line, '\n')); err != nil {
					return
				}
				flusher.Flush()
			}
		}
	}
}

// slowFollowerReport is the loss report a follower gets for the n live
// events it was too slow to take.
func slowFollowerReport(n uint64, at time.Time) event.Event {
	e := event.LossReport(map[string]uint64{"follow_client_slow": n})
	e.Time = at
	return e
}
