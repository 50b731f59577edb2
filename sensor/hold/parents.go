package hold

import (
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"

	"github.com/ringfence/ringfence/sensor/hostfs"
	"github.com/ringfence/ringfence/sensor/kernel"
)

// ParentKernel is how the kernel learns the runtime parents: the cgroups
// below which a new cgroup is a container, held at its first exec.
type ParentKernel interface {
	AddRuntimeParent(cgroup uint64) error
	ExpectRuntimeParent(dir uint32, ancestor uint64, parts []string) error
}

// Parents keeps the kernel told of the runtime parents: those that exist by
// id, the others by the names of their missing path parts, so the kernel
// marks each the moment it is created and the first container of a new
// runtime namespace is held like every other.
type Parents struct {
	kern       ParentKernel
	cgroup2    string
	dirs       []string
	registered map[string]bool
	log        *slog.Logger
}

// NewParents checks dirs (relative to the cgroup2 mount) and returns their
// keeper; Register tells the kernel.
func NewParents(kern ParentKernel, cgroup2 string, dirs []string, log *slog.Logger) (*Parents, error) {
	for _, dir := range dirs {
		if err := CheckParent(dir); err != nil {
			return nil, err
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Parents{kern: kern, cgroup2: cgroup2, dirs: dirs, registered: make(map[string]bool), log: log}, nil
}

// CheckParent refuses a runtime parent the kernel could not recognise by
// name when it is created.
func CheckParent(dir string) error {
	clean := path.Clean("/" + dir)
	if clean == "/" {
		return fmt.Errorf("runtime parent cgroup %q: the cgroup2 root cannot be a container parent", dir)
	}
	parts := strings.Split(clean, "/")[1:]
	if len(parts) > kernel.MaxParentParts {
		return fmt.Errorf("runtime parent cgroup %q: %d path parts, at most %d", dir, len(parts), kernel.MaxParentParts)
	}
	for _, p := range parts {
		if len(p) > kernel.MaxParentName {
			return fmt.Errorf("runtime parent cgroup %q: path part %q is longer than %d bytes", dir, p, kernel.MaxParentName)
		}
	}
	return nil
}

// Register tells the kernel of each runtime parent not registered by id
// yet. Run at start and at every poll: a parent known by name becomes one
// known by id once it exists.
func (p *Parents) Register() {
	for i, dir := range p.dirs {
		if p.registered[dir] {
			continue
		}
		id, err := hostfs.CgroupID(p.cgroup2, dir)
		if err == nil {
			if err := p.kern.AddRuntimeParent(id); err != nil {
				p.log.Error("register runtime parent cgroup", "dir", dir, "error", err)
				continue
			}
			p.registered[dir] = true
			continue
		}
		ancestor, missing, err := p.nearest(dir)
		if err == nil {
			err = p.kern.ExpectRuntimeParent(uint32(i), ancestor, missing)
		}
		if err != nil {
			p.log.Error("register runtime parent cgroup to come", "dir", dir, "error", err)
		}
	}
}

// nearest returns the id of dir's deepest existing ancestor and the path
// parts below it that do not exist yet.
func (p *Parents) nearest(dir string) (uint64, []string, error) {
	parts := strings.Split(path.Clean("/"+dir), "/")[1:]
	for n := len(parts) - 1; n >= 0; n-- {
		id, err := hostfs.CgroupID(p.cgroup2, "/"+strings.Join(parts[:n], "/"))
		if err == nil {
			return id, parts[n:], nil
		}
	}
	return 0, nil, errors.New("no cgroup on the way to " + dir)
}
