package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// handler is told of each change an informer sees, in order, from a
// goroutine of the informer's own (never while its store is locked, so a
// handler may read the store and wait for it to change).
type handler struct {
	add    func(o *Object)
	update func(old, cur *Object)
	del    func(o *Object)
}

// informer keeps a copy of a resource's objects, as a list then a watch
// from that list's version deliver them, and tells its handlers of each
// change. A watch that ends is taken up again from the last version seen;
// a version the API server no longer has (410 Gone) is listed again, and
// the differences are told as changes. Failures are retried, waiting up to
// maxBackoff between tries, until ctx ends.
type informer struct {
	c        *client
	res      Resource
	ns       string // "" for every namespace or a cluster-scoped resource
	selector string // a field selector, may be ""
	keep     func(*Object) *Object
	log      *slog.Logger
	handlers []handler // set before run

	mu    sync.RWMutex
	items map[string]*Object // by key; never changed once stored
	byUID map[string]*Object

	synced atomic.Bool
	notes  notes
}

// watchTimeout is the longest watch the API server is asked for: a watch
// ends at a random time below it, so that agents spread their requests.
const watchTimeout = 10 * time.Minute

// maxBackoff bounds the wait between two failed tries.
const maxBackoff = 30 * time.Second

// errGone is a watch's version no longer held: list again.
var errGone = errors.New("resource version too old")

func newInformer(c *client, res Resource, ns, selector string, log *slog.Logger) *informer {
	return &informer{c: c, res: res, ns: ns, selector: selector, log: log,
		items: map[string]*Object{}, byUID: map[string]*Object{}, notes: notes{kick: make(chan struct{}, 1)}}
}

// addHandler adds a handler; call it before run.
func (i *informer) addHandler(h handler) { i.handlers = append(i.handlers, h) }

// hasSynced reports whether the first list is stored.
func (i *informer) hasSynced() bool { return i.synced.Load() }

// get returns the object of this key (namespace/name, or name).
func (i *informer) get(key string) (*Object, bool) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	o, ok := i.items[key]
	return o, ok
}

// getByUID returns the object with this uid.
func (i *informer) getByUID(uid string) (*Object, bool) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	o, ok := i.byUID[uid]
	return o, ok
}

// list returns every object.
func (i *informer) list() []*Object {
	i.mu.RLock()
	defer i.mu.RUnlock()
	out := make([]*Object, 0, len(i.items))
	for _, o := range i.items {
		out = append(out, o)
	}
	return out
}

// run lists and watches until ctx ends.
func (i *informer) run(ctx context.Context) {
	go i.notes.deliver(ctx, i.handlers)
	var (
		backoff = time.Second
		// since is what the next list asks for: "0" the API server's
		// cache, as at first; a version seen, the cache not older than
		// it; "" its storage, after a failed list or a version gone at once.
		since = "0"
	)
	fail := func(what string, err error) {
		// Agents retry at spread times, never sooner than the server asks.
		wait := backoff/2 + rand.N(backoff)
		if ra := retryAfter(err); ra > wait {
			wait = min(ra, 2*maxBackoff)
		}
		i.log.Warn("kubernetes: "+what+" failed, retrying", "resource", i.res.Plural, "in", wait.Round(time.Millisecond), "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		backoff = min(2*backoff, maxBackoff)
	}
	for ctx.Err() == nil {
		rv, err := i.relist(ctx, since)
		if err != nil {
			if ctx.Err() == nil {
				fail("list", err)
			}
			since = ""
			continue
		}
		for ctx.Err() == nil {
			began, was := time.Now(), rv
			rv, err = i.watch(ctx, rv)
			lasted := time.Since(began)
			if lasted >= healthyWatch {
				backoff = time.Second
			}
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, errGone) {
				since = rv
				if lasted < time.Second {
					// Gone at once, after a list of that version (a
					// cache behind): listed again later, from storage.
					fail("watch", err)
					since = ""
				}
				break
			}
			if err == nil && rv == was && lasted < time.Second {
				// A server that ends every watch at once is not asked
				// again at once.
				err = errors.New("the watch ended at once")
			}
			if err != nil {
				fail("watch", err)
			}
		}
	}
}

// healthyWatch is how long a watch lasts for the server to be deemed well
// again: the wait between tries starts again from a second.
const healthyWatch = 30 * time.Second

// relist lists the objects, stores them in place of what was stored, and
// tells the differences; it returns the list's version. since "0" asks the
// API server's cache for what it has, a version the cache not older than
// it, "" the server's storage (its latest).
func (i *informer) relist(ctx context.Context, since string) (string, error) {
	q := url.Values{}
	if i.selector != "" {
		q.Set("fieldSelector", i.selector)
	}
	switch since {
	case "":
	case "0":
		q.Set("resourceVersion", "0")
	default:
		q.Set("resourceVersion", since)
		q.Set("resourceVersionMatch", "NotOlderThan")
	}
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var l list
	if err := i.c.do(lctx, http.MethodGet, i.res.path(i.ns, ""), q, nil, &l); err != nil {
		return "", err
	}
	if l.Metadata.ResourceVersion == "" {
		return "", fmt.Errorf("list of %s: no resourceVersion", i.res.Plural)
	}
	// A list's items may leave out their kind and version: the list's own
	// tell them.
	kind := strings.TrimSuffix(l.Kind, "List")
	items := make(map[string]*Object, len(l.Items))
	for _, o := range l.Items {
		if o == nil {
			continue
		}
		if o.APIVersion == "" {
			o.APIVersion = l.APIVersion
		}
		if o.Kind == "" {
			o.Kind = kind
		}
		o = i.trim(o)
		items[o.key()] = o
	}
	i.mu.Lock()
	old := i.items
	i.items = items
	i.byUID = make(map[string]*Object, len(items))
	for _, o := range items {
		i.byUID[o.Metadata.UID] = o
	}
	var changes []note
	for k, was := range old {
		o, ok := items[k]
		switch {
		case !ok:
			changes = append(changes, note{old: was})
		case was.Metadata.UID != o.Metadata.UID: // deleted, then made again
			changes = append(changes, note{old: was}, note{cur: o})
		case was.Metadata.ResourceVersion != o.Metadata.ResourceVersion:
			changes = append(changes, note{old: was, cur: o})
		}
	}
	for k, o := range items {
		if _, ok := old[k]; !ok {
			changes = append(changes, note{cur: o})
		}
	}
	i.mu.Unlock()
	i.synced.Store(true)
	i.notes.push(changes...)
	return l.Metadata.ResourceVersion, nil
}

func (i *informer) trim(o *Object) *Object {
	if i.keep != nil {
		return i.keep(o)
	}
	return o
}

// watchEvent is one line of a watch.
type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// watch watches from version rv and stores what it delivers. It returns
// the last version seen and why it ended: nil when the API server closed it
// (its timeout), errGone when rv is too old.
func (i *informer) watch(ctx context.Context, rv string) (string, error) {
	timeout := watchTimeout/2 + rand.N(watchTimeout/2)
	q := url.Values{
		"watch":               {"1"},
		"resourceVersion":     {rv},
		"allowWatchBookmarks": {"true"},
		"timeoutSeconds":      {strconv.Itoa(int(timeout.Seconds()))},
	}
	if i.selector != "" {
		q.Set("fieldSelector", i.selector)
	}
	// A server that never ends the watch is given a minute more.
	wctx, cancel := context.WithTimeout(ctx, timeout+time.Minute)
	defer cancel()
	resp, err := i.c.request(wctx, http.MethodGet, i.res.path(i.ns, ""), q, nil)
	if isStatus(err, http.StatusGone) {
		return rv, errGone
	}
	if err != nil {
		return rv, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev watchEvent
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				return rv, nil
			}
			return rv, err
		}
		if ev.Type == "ERROR" {
			var st status
			if json.Unmarshal(ev.Object, &st) == nil && st.Code == http.StatusGone {
				return rv, errGone
			}
			return rv, fmt.Errorf("watch of %s: %s: %s", i.res.Plural, st.Reason, st.Message)
		}
		o := new(Object)
		if err := json.Unmarshal(ev.Object, o); err != nil {
			return rv, fmt.Errorf("watch of %s: %s event: %w", i.res.Plural, ev.Type, err)
		}
		if o.Metadata.ResourceVersion != "" {
			rv = o.Metadata.ResourceVersion
		}
		switch ev.Type {
		case "ADDED", "MODIFIED":
			i.put(i.trim(o))
		case "DELETED":
			i.remove(o)
		case "BOOKMARK":
		default:
			return rv, fmt.Errorf("watch of %s: unknown event type %q", i.res.Plural, ev.Type)
		}
	}
}

func (i *informer) put(o *Object) {
	k := o.key()
	i.mu.Lock()
	was := i.items[k]
	i.items[k] = o
	if was != nil && was.Metadata.UID != o.Metadata.UID {
		delete(i.byUID, was.Metadata.UID)
	}
	i.byUID[o.Metadata.UID] = o
	i.mu.Unlock()
	if was != nil && was.Metadata.UID != o.Metadata.UID { // its deletion was not seen
		i.notes.push(note{old: was}, note{cur: o})
		return
	}
	i.notes.push(note{old: was, cur: o})
}

func (i *informer) remove(o *Object) {
	k := o.key()
	i.mu.Lock()
	was, ok := i.items[k]
	delete(i.items, k)
	if ok {
		delete(i.byUID, was.Metadata.UID)
	}
	i.mu.Unlock()
	if ok {
		i.notes.push(note{old: was})
	}
}

// note is one change: cur without old an addition, old without cur a
// deletion.
type note struct{ old, cur *Object }

// notes is the queue of changes between the store and the handlers: it
// grows rather than blocks, so a slow handler never holds the store.
type notes struct {
	mu   sync.Mutex
	q    []note
	kick chan struct{} // one buffered slot: changes are waiting
}

func (n *notes) push(ns ...note) {
	if len(ns) == 0 {
		return
	}
	n.mu.Lock()
	n.q = append(n.q, ns...)
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *notes) deliver(ctx context.Context, hs []handler) {
	for {
		n.mu.Lock()
		batch := n.q
		n.q = nil
		n.mu.Unlock()
		for _, c := range batch {
			for _, h := range hs {
				switch {
				case c.old == nil && h.add != nil:
					h.add(c.cur)
				case c.cur == nil && h.del != nil:
					h.del(c.old)
				case c.old != nil && c.cur != nil && h.update != nil:
					h.update(c.old, c.cur)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-n.kick:
		}
	}
}
