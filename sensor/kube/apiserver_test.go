package kube

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI is an API server over HTTP for the agent's tests: it lists,
// watches (from a version, with bookmarks-free history), gets and creates
// objects as the real one does, keeps a history it can forget (so that a
// watch from a forgotten version gets 410 Gone), and counts what it is
// asked.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	rv        int
	objs      map[string]map[string]map[string]any // plural → key → object
	hist      []histEvent
	forgotten int // a watch from a version below is Gone
	changed   chan struct{}
	fail      map[string]int // plural → HTTP status answered to every request on it
	events    chan map[string]any
	lists     map[string]int
	listRVs   []string      // each list's resourceVersion and resourceVersionMatch
	watchFor  time.Duration // how long a watch lasts at most
}

type histEvent struct {
	rv     int
	plural string
	typ    string
	obj    map[string]any
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, objs: map[string]map[string]map[string]any{}, changed: make(chan struct{}),
		fail: map[string]int{}, events: make(chan map[string]any, 100), lists: map[string]int{}, watchFor: time.Minute}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// client is a client of the fake.
func (f *fakeAPI) client() *client {
	return &client{server: f.srv.URL, http: f.srv.Client()}
}

func objKey(obj map[string]any) string {
	md := obj["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	if ns, _ := md["namespace"].(string); ns != "" {
		return ns + "/" + name
	}
	return name
}

// put creates or replaces an object of a resource and tells the watches.
func (f *fakeAPI) put(plural string, obj map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rv++
	obj = clone(obj)
	obj["metadata"].(map[string]any)["resourceVersion"] = strconv.Itoa(f.rv)
	if f.objs[plural] == nil {
		f.objs[plural] = map[string]map[string]any{}
	}
	k := objKey(obj)
	typ := "MODIFIED"
	if _, ok := f.objs[plural][k]; !ok {
		typ = "ADDED"
	}
	f.objs[plural][k] = obj
	f.record(plural, typ, obj)
}

// del deletes an object and tells the watches.
func (f *fakeAPI) del(plural, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	obj, ok := f.objs[plural][key]
	if !ok {
		f.t.Fatalf("fake API: no %s %s to delete", plural, key)
	}
	delete(f.objs[plural], key)
	f.rv++
	obj = clone(obj)
	obj["metadata"].(map[string]any)["resourceVersion"] = strconv.Itoa(f.rv)
	f.record(plural, "DELETED", obj)
}

func (f *fakeAPI) record(plural, typ string, obj map[string]any) {
	f.hist = append(f.hist, histEvent{rv: f.rv, plural: plural, typ: typ, obj: obj})
	close(f.changed)
	f.changed = make(chan struct{})
}

// forget drops the history: watches end, and a watch from any version
// seen so far is Gone.
func (f *fakeAPI) forget() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rv++
	f.forgotten = f.rv
	f.hist = nil
	close(f.changed)
	f.changed = make(chan struct{})
}

// failing makes every request on a resource answer code (0: no more).
func (f *fakeAPI) failing(plural string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[plural] = code
}

func (f *fakeAPI) listCount(plural string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists[plural]
}

// gone reports whether a watch from version rv would be answered Gone.
func (f *fakeAPI) gone(rv string) bool {
	n, err := strconv.Atoi(rv)
	f.mu.Lock()
	defer f.mu.Unlock()
	return err == nil && n < f.forgotten
}

func (f *fakeAPI) listVersions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.listRVs)
}

func clone(obj map[string]any) map[string]any {
	data, _ := json.Marshal(obj)
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return out
}

var (
	listKind       = map[string]string{"pods": "PodList", "daemonsets": "DaemonSetList", "runtimepolicies": "RuntimePolicyList"}
	listAPIVersion = map[string]string{"pods": "v1", "daemonsets": "apps/v1", "runtimepolicies": "ringfence.dev/v1alpha1"}
)

func writeStatus(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": msg})
}

// parsePath splits /api/v1[/namespaces/NS]/PLURAL[/NAME] (or /apis/G/V/...).
func parsePath(p string) (ns, plural, name string, ok bool) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return "", "", "", false
	}
	if len(parts) >= 2 && parts[0] == "namespaces" {
		ns, parts = parts[1], parts[2:]
	}
	switch len(parts) {
	case 1:
		return ns, parts[0], "", true
	case 2:
		return ns, parts[0], parts[1], true
	}
	return "", "", "", false
}

// matches reports whether obj is in namespace ns ("" any) and has the
// field selector's value ("a.b=v", one term).
func matches(obj map[string]any, ns, selector string) bool {
	md := obj["metadata"].(map[string]any)
	if ns != "" && md["namespace"] != ns {
		return false
	}
	if selector == "" {
		return true
	}
	field, want, _ := strings.Cut(selector, "=")
	var v any = obj
	for _, p := range strings.Split(field, ".") {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v == want
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	ns, plural, name, ok := parsePath(r.URL.Path)
	if !ok {
		writeStatus(w, http.StatusNotFound, "NotFound", "no such path "+r.URL.Path)
		return
	}
	q := r.URL.Query()
	f.mu.Lock()
	code := f.fail[plural]
	if r.Method == http.MethodGet && name == "" && q.Get("watch") != "1" { // a list, answered or not
		f.lists[plural]++
		f.listRVs = append(f.listRVs, q.Get("resourceVersion")+"/"+q.Get("resourceVersionMatch"))
	}
	f.mu.Unlock()
	if code != 0 && !(q.Get("watch") == "1" && f.gone(q.Get("resourceVersion"))) {
		// A watch from a forgotten version is answered Gone even then, as
		// it would be at once, so the informer goes to list.
		writeStatus(w, code, "InternalError", "failing as told")
		return
	}
	switch {
	case r.Method == http.MethodPost && plural == "events":
		var ev map[string]any
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			writeStatus(w, http.StatusBadRequest, "BadRequest", err.Error())
			return
		}
		f.events <- ev
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(ev)
	case r.Method != http.MethodGet:
		writeStatus(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
	case name != "":
		f.mu.Lock()
		obj, ok := f.objs[plural][strings.TrimPrefix(ns+"/"+name, "/")]
		f.mu.Unlock()
		if !ok {
			writeStatus(w, http.StatusNotFound, "NotFound", fmt.Sprintf("%s %q not found", plural, name))
			return
		}
		_ = json.NewEncoder(w).Encode(obj)
	case q.Get("watch") == "1":
		f.watch(w, r, ns, plural, q.Get("fieldSelector"), q.Get("resourceVersion"))
	default:
		f.mu.Lock()
		items := []any{}
		for _, obj := range f.objs[plural] {
			if matches(obj, ns, q.Get("fieldSelector")) {
				item := clone(obj)
				if plural == "pods" { // typed lists leave the items' kind out
					delete(item, "kind")
					delete(item, "apiVersion")
				}
				items = append(items, item)
			}
		}
		rv := f.rv
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"apiVersion": listAPIVersion[plural], "kind": listKind[plural],
			"metadata": map[string]any{"resourceVersion": strconv.Itoa(rv)}, "items": items})
	}
}

func (f *fakeAPI) watch(w http.ResponseWriter, r *http.Request, ns, plural, selector, from string) {
	cursor, err := strconv.Atoi(from)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, "BadRequest", "resourceVersion "+from)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	end := time.After(f.watchFor)
	for {
		f.mu.Lock()
		if cursor < f.forgotten {
			f.mu.Unlock()
			_ = enc.Encode(map[string]any{"type": "ERROR", "object": map[string]any{"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"}})
			return
		}
		var out []histEvent
		for _, e := range f.hist {
			if e.rv > cursor && e.plural == plural && matches(e.obj, ns, selector) {
				out = append(out, e)
			}
		}
		cursor = f.rv
		changed := f.changed
		f.mu.Unlock()
		for _, e := range out {
			if enc.Encode(map[string]any{"type": e.typ, "object": e.obj}) != nil {
				return
			}
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-end:
			return
		case <-changed:
		}
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// quiet is a logger for tests.
func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }
