// Package policies keeps the policy set in force in step with its sources:
// policy files and directories, read again on demand (SIGHUP) and when they
// change. A valid set is loaded into the engine in one switch; an invalid
// one is refused, with every problem logged, reported and kept in the
// engine's status, and the set in force stays.
package policies

import (
	"fmt"
	"log/slog"
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

func (f *Files) load() error {
	if len(f.paths) == 0 {
		return nil
	}
	f.print = enforce.Fingerprint(f.paths...)
	pols, files, problems := enforce.LoadPaths(f.paths...)
	if len(problems) > 0 {
		lines := problems.Lines()
		for _, l := range lines {
			f.log.Error("policy refused", "problem", l)
		}
		f.engine.Reject(lines)
		f.report(fmt.Sprintf("policy refused, generation %d stays in force: %s", f.engine.Status().Generation, strings.Join(lines, "; ")))
		return problems
	}
	if len(pols) == 0 && !f.allowEmpty {
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
