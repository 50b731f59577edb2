package policies

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/enforce"
)

// fakeEngine keeps what it was given.
type fakeEngine struct {
	loads    [][]string // policy names of each loaded set
	rejected []string
	gen      uint64
}

func (f *fakeEngine) Load(pols []enforce.RuntimePolicy, _ []string) error {
	var names []string
	for _, p := range pols {
		names = append(names, p.Name)
	}
	f.loads = append(f.loads, names)
	f.gen++
	return nil
}

func (f *fakeEngine) Reject(problems []string) { f.rejected = problems }
func (f *fakeEngine) Status() enforce.Status {
	return enforce.Status{Generation: f.gen, Policies: []string{"p"}}
}

const policy = `apiVersion: ringfence.dev/v1alpha1
kind: RuntimePolicy
metadata:
  name: %s
spec:
  mode: audit
  denyPrivileged: true
`

func write(t *testing.T, path, name string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Replace(policy, "%s", name, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFiles loads a valid set, keeps it when the files turn invalid, and
// reloads only when a file changed.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	write(t, file, "first")
	eng := &fakeEngine{}
	var reports []string
	f := NewFiles([]string{dir}, eng, func(m string) { reports = append(reports, m) }, nil)
	if err := f.Load(); err != nil {
		t.Fatal(err)
	}
	f.ReloadIfChanged() // nothing changed
	if len(eng.loads) != 1 || eng.loads[0][0] != "first" {
		t.Fatalf("loads %v", eng.loads)
	}
	if err := os.WriteFile(file, []byte("spec: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.ReloadIfChanged()
	if len(eng.loads) != 1 || len(eng.rejected) == 0 {
		t.Fatalf("an invalid file: loads %v, rejected %v", eng.loads, eng.rejected)
	}
	if last := reports[len(reports)-1]; !strings.HasPrefix(last, "policy refused, generation 1 stays in force: ") {
		t.Fatalf("report %q", last)
	}
	write(t, file, "second")
	f.ReloadIfChanged()
	if len(eng.loads) != 2 || eng.loads[1][0] != "second" {
		t.Fatalf("loads %v", eng.loads)
	}
	if last := reports[len(reports)-1]; last != "policy generation 2 loaded: p" {
		t.Fatalf("report %q", last)
	}
}

// TestNoFiles: a sensor without policy files observes only.
func TestNoFiles(t *testing.T) {
	eng := &fakeEngine{}
	f := NewFiles(nil, eng, func(string) { t.Fatal("reported a load of nothing") }, nil)
	if err := f.Load(); err != nil || len(eng.loads) != 0 {
		t.Fatalf("load of no files: %v, %v", err, eng.loads)
	}
}

// TestEmptyRefused: paths that hold no policy would remove every policy:
// refused, unless allowed.
func TestEmptyRefused(t *testing.T) {
	dir := t.TempDir()
	eng := &fakeEngine{}
	f := NewFiles([]string{dir}, eng, func(string) {}, nil)
	if err := f.Load(); err == nil || !strings.Contains(err.Error(), "empty set would remove every policy") {
		t.Fatalf("an empty directory: %v", err)
	}
	if len(eng.loads) != 0 || len(eng.rejected) == 0 {
		t.Fatalf("loads %v rejected %v", eng.loads, eng.rejected)
	}
	f.AllowEmpty()
	if err := f.Load(); err != nil || len(eng.loads) != 1 || len(eng.loads[0]) != 0 {
		t.Fatalf("an empty directory, allowed: %v, loads %v", err, eng.loads)
	}
}

// TestSources joins the files' policies with every source's, in source
// order; a name given twice, or a source's own problems, refuse the whole
// set and leave the one in force, and the refused source set is not kept;
// a source that lists no policy empties its part of the set.
func TestSources(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), "a")
	eng := &fakeEngine{}
	f := NewFiles([]string{dir}, eng, func(string) {}, nil)
	if err := f.Load(); err != nil {
		t.Fatal(err)
	}
	pol := func(name string) enforce.RuntimePolicy {
		return enforce.RuntimePolicy{Name: name, Source: enforce.Source{File: "runtimepolicy/" + name, Line: 1}}
	}
	if err := f.SetSource("kubernetes", []enforce.RuntimePolicy{pol("b"), pol("c")}, []string{"runtimepolicy/b", "runtimepolicy/c"}, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(eng.loads[len(eng.loads)-1], ","); got != "a,b,c" {
		t.Fatalf("set in force %s, want a,b,c", got)
	}
	loads := len(eng.loads)
	err := f.SetSource("kubernetes", []enforce.RuntimePolicy{pol("a")}, []string{"runtimepolicy/a"}, nil)
	if err == nil || !strings.Contains(err.Error(), `policy "a" is already defined at`) || len(eng.loads) != loads {
		t.Fatalf("a name given twice: %v (%d loads, were %d)", err, len(eng.loads), loads)
	}
	err = f.SetSource("other", nil, nil, enforce.Problems{{File: "other/x", Message: "broken"}})
	if err == nil || len(eng.loads) != loads {
		t.Fatalf("a source's problems: %v", err)
	}
	// The refused sets were not kept: a reload loads what was in force.
	if err := f.Load(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(eng.loads[len(eng.loads)-1], ","); got != "a,b,c" {
		t.Fatalf("after refusals, reload gives %s, want a,b,c", got)
	}
	if err := f.SetSource("kubernetes", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(eng.loads[len(eng.loads)-1], ","); got != "a" {
		t.Fatalf("a source with no policy left: %s, want a", got)
	}
}
