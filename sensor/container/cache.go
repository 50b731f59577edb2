package container

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultGrace is how long a gone container still resolves, for the events
// its processes emitted before they died that are read after.
const DefaultGrace = 5 * time.Minute

// CacheConfig configures a Cache.
type CacheConfig struct {
	// Grace is how long a gone container still resolves; DefaultGrace when
	// zero.
	Grace time.Duration
	// Now is the clock; time.Now when nil. Tests inject their own.
	Now func() time.Time
}

// Cache maps cgroup ids to containers. Lookup is built for the event hot
// path: one atomic load and a map read, no lock, no I/O. Writers, which come
// at container churn rate, copy the map; readers never see it change.
type Cache struct {
	grace time.Duration
	now   func() time.Time

	mu   sync.Mutex // serialises writers
	snap atomic.Pointer[map[uint64]*entry]
}

// entry is immutable once published in a snapshot.
type entry struct {
	info Info
	// goneAt is when the cache learned the container was gone, by its own
	// clock: the runtime's exit time may be skewed or, after a reconnect,
	// long past.
	goneAt time.Time
}

// NewCache returns an empty Cache.
func NewCache(cfg CacheConfig) *Cache {
	c := &Cache{grace: cfg.Grace, now: cfg.Now}
	if c.grace <= 0 {
		c.grace = DefaultGrace
	}
	if c.now == nil {
		c.now = time.Now
	}
	m := map[uint64]*entry{}
	c.snap.Store(&m)
	return c
}

// Lookup returns the container whose cgroup has id cgroupID, running or gone
// for less than the grace period.
func (c *Cache) Lookup(cgroupID uint64) (Info, bool) {
	e, ok := (*c.snap.Load())[cgroupID]
	if !ok || (!e.goneAt.IsZero() && c.expired(e, c.now())) {
		return Info{}, false
	}
	return e.info, true
}

// List returns every container Lookup would resolve, ordered by namespace
// and id.
func (c *Cache) List() []Info {
	now := c.now()
	m := *c.snap.Load()
	out := make([]Info, 0, len(m))
	for _, e := range m {
		if !c.expired(e, now) {
			out = append(out, e.info)
		}
	}
	slices.SortFunc(out, func(a, b Info) int {
		return cmp.Or(cmp.Compare(a.RuntimeNamespace, b.RuntimeNamespace), cmp.Compare(a.ID, b.ID), cmp.Compare(a.CgroupID, b.CgroupID))
	})
	return out
}

// Len returns how many entries the cache holds, expired ones not yet swept
// included: what it costs in memory.
func (c *Cache) Len() int { return len(*c.snap.Load()) }

// Put adds info under info.CgroupID, or replaces what is there. It reports
// whether the id was new (or its previous holder expired).
func (c *Cache) Put(info Info) bool {
	var added bool
	c.modify(func(m map[uint64]*entry, now time.Time) {
		old, had := m[info.CgroupID]
		added = !had
		switch {
		case had && !old.info.WatchedSince.IsZero():
			info.WatchedSince = old.info.WatchedSince
		case info.WatchedSince.IsZero():
			info.WatchedSince = now
		}
		e := &entry{info: info}
		if info.Gone() {
			e.goneAt = now
		}
		m[info.CgroupID] = e
	})
	return added
}

// Update applies fn to a copy of the entry for cgroupID and stores the
// result; it reports false, without calling fn, if there is none. fn must
// not change CgroupID.
func (c *Cache) Update(cgroupID uint64, fn func(*Info)) (Info, bool) {
	var out Info
	var ok bool
	c.modify(func(m map[uint64]*entry, now time.Time) {
		old, had := m[cgroupID]
		if !had {
			return
		}
		e := &entry{info: old.info, goneAt: old.goneAt}
		fn(&e.info)
		e.info.CgroupID = cgroupID
		if e.goneAt.IsZero() && e.info.Gone() {
			e.goneAt = now
		}
		m[cgroupID] = e
		out, ok = e.info, true
	})
	return out, ok
}

// MarkGone records that the container in cgroupID exited at exited with
// status. It returns the updated Info, and false if the id is unknown or
// the container was already gone.
func (c *Cache) MarkGone(cgroupID uint64, exited time.Time, status uint32) (Info, bool) {
	var out Info
	var ok bool
	c.modify(func(m map[uint64]*entry, now time.Time) {
		old, had := m[cgroupID]
		if !had || old.info.Gone() {
			return
		}
		if exited.IsZero() {
			exited = now
		}
		e := &entry{info: old.info, goneAt: now}
		e.info.Exited, e.info.ExitStatus = exited, status
		m[cgroupID] = e
		out, ok = e.info, true
	})
	return out, ok
}

// Sweep drops the entries whose grace has run out and returns how many. Every
// write sweeps too; call Sweep when there are none for a while.
func (c *Cache) Sweep() int {
	return c.modify(func(map[uint64]*entry, time.Time) {})
}

// modify runs fn on a copy of the current map, without expired entries, and
// publishes the copy. It returns how many expired entries it dropped.
func (c *Cache) modify(fn func(m map[uint64]*entry, now time.Time)) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	old := *c.snap.Load()
	m := make(map[uint64]*entry, len(old)+1)
	dropped := 0
	for id, e := range old {
		if c.expired(e, now) {
			dropped++
			continue
		}
		m[id] = e
	}
	fn(m, now)
	c.snap.Store(&m)
	return dropped
}

func (c *Cache) expired(e *entry, now time.Time) bool {
	return !e.goneAt.IsZero() && !now.Before(e.goneAt.Add(c.grace))
}
