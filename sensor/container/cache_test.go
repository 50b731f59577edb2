package container

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for grace tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock(tb testing.TB) *fakeClock {
	tb.Helper()
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestCacheGrace(t *testing.T) {
	const grace = time.Minute
	tests := []struct {
		name     string
		gone     bool          // mark the container gone first
		after    time.Duration // then advance the clock by this much
		want     bool          // Lookup still resolves
		wantHeld int           // entries held after a Sweep
	}{
		{name: "running stays", after: 10 * grace, want: true, wantHeld: 1},
		{name: "just gone", gone: true, want: true, wantHeld: 1},
		{name: "within grace", gone: true, after: grace - time.Second, want: true, wantHeld: 1},
		{name: "grace over", gone: true, after: grace, want: false, wantHeld: 0},
		{name: "long gone", gone: true, after: 10 * grace, want: false, wantHeld: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock(t)
			c := NewCache(CacheConfig{Grace: grace, Now: clock.Now})
			c.Put(Info{ID: "c1", CgroupID: 42})
			if tt.gone {
				if _, ok := c.MarkGone(42, time.Time{}, 137); !ok {
					t.Fatal("MarkGone of a running container reported no change")
				}
			}
			clock.Advance(tt.after)
			info, ok := c.Lookup(42)
			if ok != tt.want {
				t.Fatalf("Lookup ok = %v, want %v", ok, tt.want)
			}
			if ok && (info.ID != "c1" || info.Gone() != tt.gone) {
				t.Errorf("Lookup = %+v", info)
			}
			if got := len(c.List()); got != btoi(tt.want) {
				t.Errorf("List has %d entries, want %d", got, btoi(tt.want))
			}
			c.Sweep()
			if got := c.Len(); got != tt.wantHeld {
				t.Errorf("Len after Sweep = %d, want %d", got, tt.wantHeld)
			}
		})
	}
}

func TestCacheOperations(t *testing.T) {
	exit := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		steps func(c *Cache) (Info, bool)
		want  Info
		ok    bool
	}{
		{
			name:  "unknown id",
			steps: func(c *Cache) (Info, bool) { return c.Lookup(7) },
		},
		{
			name: "put then lookup",
			steps: func(c *Cache) (Info, bool) {
				c.Put(Info{ID: "a", CgroupID: 7, Pid: 10})
				return c.Lookup(7)
			},
			want: Info{ID: "a", CgroupID: 7, Pid: 10}, ok: true,
		},
		{
			name: "put replaces",
			steps: func(c *Cache) (Info, bool) {
				c.Put(Info{ID: "a", CgroupID: 7})
				c.Put(Info{ID: "b", CgroupID: 7})
				return c.Lookup(7)
			},
			want: Info{ID: "b", CgroupID: 7}, ok: true,
		},
		{
			name: "update keeps the id",
			steps: func(c *Cache) (Info, bool) {
				c.Put(Info{ID: "a", CgroupID: 7})
				c.Update(7, func(i *Info) { i.Pid, i.CgroupID = 11, 99 })
				return c.Lookup(7)
			},
			want: Info{ID: "a", CgroupID: 7, Pid: 11}, ok: true,
		},
		{
			name: "update of an unknown id",
			steps: func(c *Cache) (Info, bool) {
				return c.Update(7, func(i *Info) { panic("called") })
			},
		},
		{
			name: "mark gone keeps the exit",
			steps: func(c *Cache) (Info, bool) {
				c.Put(Info{ID: "a", CgroupID: 7})
				c.MarkGone(7, exit, 3)
				return c.Lookup(7)
			},
			want: Info{ID: "a", CgroupID: 7, Exited: exit, ExitStatus: 3}, ok: true,
		},
		{
			name: "mark gone twice",
			steps: func(c *Cache) (Info, bool) {
				c.Put(Info{ID: "a", CgroupID: 7})
				c.MarkGone(7, exit, 3)
				return c.MarkGone(7, exit.Add(time.Hour), 4)
			},
		},
		{
			name: "mark gone of an unknown id",
			steps: func(c *Cache) (Info, bool) {
				return c.MarkGone(7, exit, 3)
			},
		},
	}
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCache(CacheConfig{Now: func() time.Time { return t0 }})
			if tt.ok {
				tt.want.WatchedSince = t0
			}
			got, ok := tt.steps(c)
			if ok != tt.ok || fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tt.want) {
				t.Errorf("got %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestCacheWatchedSince(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	first := now
	c := NewCache(CacheConfig{Now: func() time.Time { return now }})
	c.Put(Info{ID: "a", CgroupID: 7})
	now = now.Add(time.Minute)
	c.Put(Info{ID: "a", CgroupID: 7, Image: "busybox"}) // the runtime names it fully later
	c.Update(7, func(i *Info) { i.Pid = 3 })
	c.MarkGone(7, time.Time{}, 0)
	if got, _ := c.Lookup(7); !got.WatchedSince.Equal(first) {
		t.Errorf("WatchedSince = %v after replace, update and gone; want the first Put's %v", got.WatchedSince, first)
	}
	given := first.Add(-time.Hour)
	c.Put(Info{ID: "b", CgroupID: 8, WatchedSince: given})
	if got, _ := c.Lookup(8); !got.WatchedSince.Equal(given) {
		t.Errorf("WatchedSince = %v; want the one given, %v", got.WatchedSince, given)
	}
}

func TestCacheList(t *testing.T) {
	c := NewCache(CacheConfig{})
	c.Put(Info{RuntimeNamespace: "k8s.io", ID: "b", CgroupID: 3})
	c.Put(Info{RuntimeNamespace: "default", ID: "z", CgroupID: 1})
	c.Put(Info{RuntimeNamespace: "k8s.io", ID: "a", CgroupID: 2})
	var got []string
	for _, i := range c.List() {
		got = append(got, i.RuntimeNamespace+"/"+i.ID)
	}
	if want := "[default/z k8s.io/a k8s.io/b]"; fmt.Sprint(got) != want {
		t.Errorf("List = %v, want %v", got, want)
	}
}

// TestCacheChurn checks that containers coming and going leave nothing
// behind once their grace has passed.
func TestCacheChurn(t *testing.T) {
	tests := []struct {
		name       string
		containers int
		live       int // of those, still running at the end
	}{
		{name: "all gone", containers: 5000},
		{name: "some left", containers: 5000, live: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock(t)
			c := NewCache(CacheConfig{Grace: time.Minute, Now: clock.Now})
			for i := range tt.containers {
				id := uint64(i + 1)
				c.Put(Info{ID: fmt.Sprint("c", i), CgroupID: id})
				if i >= tt.live {
					c.MarkGone(id, time.Time{}, 0)
				}
				clock.Advance(time.Second)
			}
			clock.Advance(time.Minute)
			c.Sweep()
			if got := c.Len(); got != tt.live {
				t.Errorf("Len = %d after the grace, want %d", got, tt.live)
			}
		})
	}
}

// TestCacheConcurrent runs readers against a writer; run with -race.
func TestCacheConcurrent(t *testing.T) {
	c := NewCache(CacheConfig{Grace: time.Nanosecond})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for id := uint64(1); id <= 64; id++ {
					if info, ok := c.Lookup(id); ok && info.CgroupID != id {
						t.Errorf("Lookup(%d) = %+v", id, info)
					}
				}
			}
		}()
	}
	for i := range 2000 {
		id := uint64(i%64 + 1)
		c.Put(Info{ID: fmt.Sprint(i), CgroupID: id})
		c.Update(id, func(info *Info) { info.Pid = uint32(i) })
		c.MarkGone(id, time.Time{}, 0)
	}
	close(stop)
	wg.Wait()
}

// BenchmarkLookup measures the hot path.
func BenchmarkLookup(b *testing.B) {
	c := NewCache(CacheConfig{})
	for i := range 1000 {
		c.Put(Info{ID: fmt.Sprint(i), CgroupID: uint64(i + 1)})
	}
	b.RunParallel(func(pb *testing.PB) {
		id := uint64(1)
		for pb.Next() {
			c.Lookup(id)
			id = id%1000 + 1
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
