// Package metrics exposes the sensor to Prometheus: counters and gauges read
// from the sensor's status at scrape time (so they always agree with
// `ringfence status`), the Go and process collectors, and health endpoints.
package metrics

import (
	"net/http"
	"runtime"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ringfence/ringfence/sensor/status"
)

// Source is what the metrics read.
type Source interface {
	Snapshot() *status.Snapshot
	Ready() bool
}

// NewRegistry returns a registry with the sensor's metrics and the Go and
// process collectors.
func NewRegistry(src Source, version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(src, version),
	)
	return reg
}

// Handler serves /metrics, /healthz (the process answers) and /readyz (the
// sensor is attached and reading events).
func Handler(reg *prometheus.Registry, src Source) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	health := HealthHandler(src.Ready)
	mux.Handle("GET /healthz", health)
	mux.Handle("GET /readyz", health)
	return mux
}

// HealthHandler serves /healthz (the process answers) and /readyz (ready
// says the sensor is attached and reading events) alone: what the daemon's
// own health socket answers.
func HealthHandler(ready func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready: programs not attached or not reading", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	return mux
}

type collector struct {
	src     Source
	version string

	events, lost, violations, containers, watched, generation,
	build, tier, storeBytes, storeSegments, hooks, stalls, sinkDropped,
	runtimeUp, runtimeReconnects, holds, unapplied, mapEntries, mapCapacity, untracked *prometheus.Desc
}

func newCollector(src Source, version string) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("ringfence_"+name, help, labels, nil)
	}
	return &collector{
		src:               src,
		version:           version,
		events:            d("events_total", "Events delivered by the sensor.", "kind", "verdict"),
		lost:              d("events_lost_total", "Events lost, by cause (kernel ring full per kind, undecodable, unencodable, queue_closed, store write errors).", "cause"),
		stalls:            d("pipeline_stalls_total", "Times a pipeline stage waited for the next one (back-pressure instead of loss).", "stage"),
		sinkDropped:       d("sink_dropped_total", "Events one sink dropped while the others wrote them (JSON lines on stdout: stdout_behind, its reader fell behind; stdout_yielded, the kernel ring was filling and stdout gave way to the store); the store has them.", "cause"),
		violations:        d("violations_total", "Policy violations, denied or audited.", "policy", "rule", "mode"),
		containers:        d("containers", "Containers the sensor knows."),
		watched:           d("watched_cgroups", "Cgroups the kernel programs report on."),
		generation:        d("policy_generation", "Generation of the policy set in force (0: none loaded)."),
		build:             d("build_info", "Build information; always 1.", "version", "goversion"),
		tier:              d("tier_info", "Kernel capability tier in use; always 1.", "tier"),
		storeBytes:        d("store_bytes", "Size of the event store on disk."),
		storeSegments:     d("store_segments", "Segment files in the event store."),
		hooks:             d("hooks_attached", "Kernel programs attached."),
		runtimeUp:         d("runtime_connected", "1 while connected to the container runtime, 0 while running on the cgroup fallback."),
		runtimeReconnects: d("runtime_reconnects_total", "Reconnections to the container runtime."),
		holds:             d("holds_total", "Outcomes of holding new containers before their first instruction (classified, cgroup_path, timeout; held_execs, runtime_execs, recovered, parked_overflow; release, apply and watch errors).", "outcome"),
		unapplied:         d("containers_held_unapplied", "Containers held before their first instruction because their policies could not be applied."),
		mapEntries:        d("kernel_map_entries", "Entries of the kernel maps that grow with containers and cgroups.", "map"),
		mapCapacity:       d("kernel_map_capacity", "Capacity of those maps (--kernel-map-entries).", "map"),
		untracked:         d("violation_counts_untracked_total", "Identical-violation counts the daemon could not remember, its table full."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.events, c.lost, c.violations, c.containers, c.watched, c.generation, c.build, c.tier, c.storeBytes, c.storeSegments, c.hooks, c.stalls, c.sinkDropped, c.runtimeUp, c.runtimeReconnects, c.holds, c.unapplied, c.mapEntries, c.mapCapacity, c.untracked} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Snapshot()
	for k, n := range s.Events {
		kind, verdict, _ := strings.Cut(k, "/")
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(n), kind, verdict)
	}
	for cause, n := range s.Lost {
		ch <- prometheus.MustNewConstMetric(c.lost, prometheus.CounterValue, float64(n), cause)
	}
	for stage, n := range s.Stalls {
		ch <- prometheus.MustNewConstMetric(c.stalls, prometheus.CounterValue, float64(n), stage)
	}
	for cause, n := range s.SinkDropped {
		ch <- prometheus.MustNewConstMetric(c.sinkDropped, prometheus.CounterValue, float64(n), cause)
	}
	ch <- prometheus.MustNewConstMetric(c.containers, prometheus.GaugeValue, float64(s.Containers))
	ch <- prometheus.MustNewConstMetric(c.watched, prometheus.GaugeValue, float64(s.Watched))
	var gen float64
	if s.Policy != nil {
		gen = float64(s.Policy.Generation)
	}
	ch <- prometheus.MustNewConstMetric(c.generation, prometheus.GaugeValue, gen)
	for k, n := range s.Violations {
		parts := strings.SplitN(k, "/", 3)
		if len(parts) == 3 {
			ch <- prometheus.MustNewConstMetric(c.violations, prometheus.CounterValue, float64(n), parts[0], parts[1], parts[2])
		}
	}
	ch <- prometheus.MustNewConstMetric(c.build, prometheus.GaugeValue, 1, c.version, runtime.Version())
	ch <- prometheus.MustNewConstMetric(c.tier, prometheus.GaugeValue, 1, s.Tier)
	attached := 0
	for _, h := range s.Hooks {
		if h.Attached {
			attached++
		}
	}
	ch <- prometheus.MustNewConstMetric(c.hooks, prometheus.GaugeValue, float64(attached))
	if s.Runtime != nil {
		up := 0.0
		if s.Runtime.Connected {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.runtimeUp, prometheus.GaugeValue, up)
		ch <- prometheus.MustNewConstMetric(c.runtimeReconnects, prometheus.CounterValue, float64(s.Runtime.Reconnects))
	}
	for outcome, n := range s.Holds {
		ch <- prometheus.MustNewConstMetric(c.holds, prometheus.CounterValue, float64(n), outcome)
	}
	if s.Holds != nil {
		ch <- prometheus.MustNewConstMetric(c.unapplied, prometheus.GaugeValue, float64(len(s.Unapplied)))
	}
	for m, n := range s.KernelMaps {
		ch <- prometheus.MustNewConstMetric(c.mapEntries, prometheus.GaugeValue, float64(n), m)
	}
	for m, n := range s.KernelMapCapacity {
		ch <- prometheus.MustNewConstMetric(c.mapCapacity, prometheus.GaugeValue, float64(n), m)
	}
	ch <- prometheus.MustNewConstMetric(c.untracked, prometheus.CounterValue, float64(s.Untracked))
	if s.Store != nil {
		ch <- prometheus.MustNewConstMetric(c.storeBytes, prometheus.GaugeValue, float64(s.Store.Bytes))
		ch <- prometheus.MustNewConstMetric(c.storeSegments, prometheus.GaugeValue, float64(s.Store.Segments))
	}
}
