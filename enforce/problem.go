package enforce

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with a policy file.
type Problem struct {
	File string
	Line int
	// Path is the field path inside the document: spec.bindInterfaces.ports[1].
	Path    string
	Message string
}

func (p Problem) String() string {
	if p.File == "" {
		return p.Message
	}
	if p.Path == "" {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	}
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Path, p.Message)
}

// Problems is every problem found, in file and line order.
type Problems []Problem

func (ps Problems) Error() string {
	if len(ps) == 0 {
		return "no problems"
	}
	s := ps[0].String()
	if len(ps) > 1 {
		s += fmt.Sprintf(" (and %d more)", len(ps)-1)
	}
	return s
}

// Lines returns every problem, one per element.
func (ps Problems) Lines() []string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return lines
}

// Every is an error that says every problem, one per line.
func (ps Problems) Every() error {
	return errors.New(strings.Join(ps.Lines(), "\n"))
}

func (ps Problems) sorted() Problems {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].File != ps[j].File {
			return ps[i].File < ps[j].File
		}
		return ps[i].Line < ps[j].Line
	})
	return ps
}
