// Package policies keeps the policy set in force in step with its sources:
// policy files and directories, read again on demand (SIGHUP) and when they
// change, and the policies other sources give (Kubernetes objects). A valid set is loaded into the engine in one switch; an invalid
// one is refused, with every problem logged, reported and kept in the
// engine's status, and the set in force stays.
package policies

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/ringfence/ringfence/enforce"
)

// Engine is where a policy set goes: the policy engine.
type Engine interface {
	Load(policies []enforce.RuntimePolicy, sources []string) error
	Reject(problems []string)
	Status() enforce.Status
}

// Files follows policy files.
type Files struct {
	paths  []string
	engine Engine
	// report says what happened to a set, for the event log.
	report func(message string)
	log    *slog.Logger

	// allowEmpty lets paths with no policy in them make the set empty:
	// otherwise an emptied directory would silently remove every policy.
	allowEmpty bool

	mu    sync.Mutex // serialises loads
	print string     // the files as last read
	// sources are the policies besides the files, by source name.
	sources map[string]sourceSet
}

// sourceSet is one source's policies, where each came from, and the
// problems of those it could not read.
type sourceSet struct {
	policies []enforce.RuntimePolicy
	origins  []string
	problems enforce.Problems
}

// AllowEmpty lets a load of paths that hold no policy put an empty set in
// force.
func (f *Files) AllowEmpty() { f.allowEmpty = true }

// NewFiles returns a follower of paths (files or directories of them);
// report receives a one-line account of each load or refusal.
func NewFiles(paths []string, engine Engine, report func(string), log *slog.Logger) *Files {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Files{paths: paths, engine: engine, report: report, log: log}
}

// Load reads the files and, when they are valid, makes them the set in
// force. Invalid files change nothing: their problems are returned.
func (f *Files) Load() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.load()
}

// ReloadIfChanged loads the files again when one changed, appeared or went.
func (f *Files) ReloadIfChanged() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.paths) > 0 && enforce.Fingerprint(f.paths...) != f.print {
		f.load()
	}
}

// SetSource replaces the policies of source (e.g. "kubernetes") and makes
// the files' and every source's policies the set in force, through the same
// checks and one switch. problems are the source's documents it could not
// read: with any, or when the whole set is refused, the set in force stays
// (the refusal logged, reported and kept in status) and the error is
// returned; a refused source set is not kept, so a later reload of the
// files does not bring it back.
func (f *Files) SetSource(source string, pols []enforce.RuntimePolicy, origins []string, problems enforce.Problems) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sources == nil {
		f.sources = map[string]sourceSet{}
	}
	prev, had := f.sources[source]
	f.sources[source] = sourceSet{policies: pols, origins: origins, problems: problems}
	err := f.load()
	if err != nil {
		if had {
			f.sources[source] = prev
		} else {
			delete(f.sources, source)
		}
	}
	return err
}

// withSources adds every source's policies, origins and problems to those
// of the files; a name given twice is a problem.
func (f *Files) withSources(pols []enforce.RuntimePolicy, files []string, problems enforce.Problems) ([]enforce.RuntimePolicy, []string, enforce.Problems) {
	seen := map[string]enforce.Source{}
	for _, p := range pols {
		seen[p.Name] = p.Source
	}
	for _, name := range slices.Sorted(maps.Keys(f.sources)) {
		set := f.sources[name]
		problems = append(problems, set.problems...)
		for _, p := range set.policies {
			if first, dup := seen[p.Name]; dup {
				problems = append(problems, enforce.Problem{File: p.Source.File, Line: p.Source.Line, Path: "metadata.name",
					Message: fmt.Sprintf("policy %q is already defined at %s:%d", p.Name, first.File, first.Line)})
				continue
			}
			seen[p.Name] = p.Source
			pols = append(pols, p)
		}
		files = append(files, set.origins...)
	}
	return pols, files, problems
}

func (f *Files) load() error {
	if len(f.paths) == 0 && len(f.sources) == 0 {
		return nil
	}
	f.print = enforce.Fingerprint(f.paths...)
	pols, files, problems := enforce.LoadPaths(f.paths...)
	pols, files, problems = f.withSources(pols, files, problems)
	if len(problems) > 0 {
		lines := problems.Lines()
		for _, l := range lines {
			f.log.Error("policy refused", "problem", l)
		}
		f.engine.Reject(lines)
		f.report(fmt.Sprintf("policy refused, generation %d stays in force: %s", f.engine.Status().Generation, strings.Join(lines, "; ")))
		return problems
	}
	// An emptied directory would silently remove every policy; a source
	// that lists none (no policy object left) says so itself.
	if len(pols) == 0 && !f.allowEmpty && len(f.sources) == 0 {
		err := fmt.Errorf("no policy in %s: an empty set would remove every policy, and is refused unless allowed", strings.Join(f.paths, ", "))
		f.log.Error("policy refused", "error", err)
		f.engine.Reject([]string{err.Error()})
		f.report(fmt.Sprintf("policy refused, generation %d stays in force: %v", f.engine.Status().Generation, err))
		return err
	}
	if err := f.engine.Load(pols, files); err != nil {
		f.log.Error("policy refused", "error", err)
		f.report(fmt.Sprintf("policy refused, generation %d stays in force: %v", f.engine.Status().Generation, err))
		return err
	}
	st := f.engine.Status()
	f.log.Info("policy loaded", "generation", st.Generation, "policies", st.Policies, "files", files)
	f.report(fmt.Sprintf("policy generation %d loaded: %s", st.Generation, strings.Join(st.Policies, ", ")))
	return nil
}
