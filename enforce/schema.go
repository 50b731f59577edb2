package enforce

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// policy walks one document.
func (w *walker) policy(doc *yaml.Node) (RuntimePolicy, bool) {
	before := len(w.problems)
	pol := RuntimePolicy{Source: Source{File: w.file, Line: doc.Line}}
	w.fields(doc, "", []string{"apiVersion", "kind", "metadata", "spec"}, map[string]func(*yaml.Node, string){
		"apiVersion": func(n *yaml.Node, p string) {
			if v, ok := w.str(n, p); ok && v != APIVersion {
				w.fail(n, p, "must be %s, not %q", APIVersion, v)
			}
			pol.APIVersion = n.Value
		},
		"kind": func(n *yaml.Node, p string) {
			if v, ok := w.str(n, p); ok && v != Kind {
				w.fail(n, p, "must be %s, not %q", Kind, v)
			}
			pol.Kind = n.Value
		},
		"metadata": func(n *yaml.Node, p string) {
			w.fields(n, p, []string{"name"}, map[string]func(*yaml.Node, string){
				"name": func(n *yaml.Node, p string) {
					if v, ok := w.str(n, p); ok {
						if !isDNSName(v) {
							w.fail(n, p, "%q is not a valid name (lower-case letters, digits, '-' and '.')", v)
						}
						pol.Name = v
					}
				},
				"labels":      func(n *yaml.Node, p string) { w.stringMap(n, p) },
				"annotations": func(n *yaml.Node, p string) { w.stringMap(n, p) },
			})
		},
		"spec": func(n *yaml.Node, p string) { pol.Spec = w.spec(n, p) },
	})
	return pol, len(w.problems) == before
}

func (w *walker) spec(n *yaml.Node, path string) Spec {
	var s Spec
	rules := 0
	ok := w.fields(n, path, []string{"mode"}, map[string]func(*yaml.Node, string){
		"mode": func(n *yaml.Node, p string) {
			if v, ok := w.str(n, p); ok {
				if v != ModeAudit && v != ModeEnforce {
					w.fail(n, p, "must be audit or enforce, not %q", v)
				}
				s.Mode = v
			}
		},
		"selector": func(n *yaml.Node, p string) { s.Selector = w.selector(n, p) },
		"readOnlyRootFilesystem": func(n *yaml.Node, p string) {
			rules++
			s.ReadOnlyRootFilesystem = &ReadOnly{}
			if n.ShortTag() == "!!null" {
				return // "readOnlyRootFilesystem:" alone: no exceptions
			}
			w.fields(n, p, nil, map[string]func(*yaml.Node, string){
				"allowWrites": func(n *yaml.Node, p string) {
					s.ReadOnlyRootFilesystem.AllowWrites = w.list(n, p, w.pathGlob)
				},
			})
		},
		"bindInterfaces": func(n *yaml.Node, p string) {
			rules++
			s.BindInterfaces = &BindRule{}
			w.fields(n, p, []string{"interfaces"}, map[string]func(*yaml.Node, string){
				"interfaces": func(n *yaml.Node, p string) {
					s.BindInterfaces.Interfaces = w.list(n, p, w.iface)
					if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
						w.fail(n, p, "give at least one interface")
					}
				},
				"ports": func(n *yaml.Node, p string) {
					for _, r := range w.list(n, p, w.portRange) {
						from, to, _ := parsePorts(r)
						s.BindInterfaces.Ports = append(s.BindInterfaces.Ports, PortRange{From: from, To: to})
					}
				},
			})
		},
		"allowedRegistries": func(n *yaml.Node, p string) {
			rules++
			s.AllowedRegistries = w.list(n, p, w.registry)
			if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
				w.fail(n, p, "give at least one registry (an empty list would forbid every image)")
			}
		},
		"denyPrivileged": func(n *yaml.Node, p string) {
			rules++
			s.DenyPrivileged = w.boolean(n, p)
		},
	})
	if ok && rules == 0 {
		w.fail(n, path, "no rule: give at least one of readOnlyRootFilesystem, bindInterfaces, allowedRegistries, denyPrivileged")
	}
	return s
}

func (w *walker) selector(n *yaml.Node, path string) Selector {
	var sel Selector
	w.fields(n, path, nil, map[string]func(*yaml.Node, string){
		"images":     func(n *yaml.Node, p string) { sel.Images = w.list(n, p, w.glob) },
		"names":      func(n *yaml.Node, p string) { sel.Names = w.list(n, p, w.glob) },
		"labels":     func(n *yaml.Node, p string) { sel.Labels = w.stringMap(n, p) },
		"namespaces": func(n *yaml.Node, p string) { sel.Namespaces = w.list(n, p, w.nonEmpty) },
	})
	return sel
}

func (w *walker) nonEmpty(n *yaml.Node, p string) (string, bool) {
	v, ok := w.str(n, p)
	if ok && v == "" {
		w.fail(n, p, "must not be empty")
		return "", false
	}
	return v, ok
}

// glob accepts a path.Match pattern; ** is allowed and crosses separators.
func (w *walker) glob(n *yaml.Node, p string) (string, bool) {
	v, ok := w.nonEmpty(n, p)
	if !ok {
		return "", false
	}
	if _, err := path.Match(strings.ReplaceAll(v, "**", "*"), ""); err != nil {
		w.fail(n, p, "%q is not a valid glob: %v", v, err)
		return "", false
	}
	return v, true
}

// pathGlob accepts what the kernel matcher can match: an absolute path,
// or a directory followed by "/**" for everything below it.
func (w *walker) pathGlob(n *yaml.Node, p string) (string, bool) {
	v, ok := w.glob(n, p)
	if !ok {
		return v, ok
	}
	if !strings.HasPrefix(v, "/") {
		w.fail(n, p, "%q must be an absolute path", v)
		return "", false
	}
	dir, _ := strings.CutSuffix(v, "/**")
	if v == "/**" {
		dir = "/"
	}
	if strings.ContainsAny(dir, "*?[]\\") {
		w.fail(n, p, "%q: only an exact path or DIR/** is supported (no other wildcards)", v)
		return "", false
	}
	if clean := path.Clean(dir); clean != dir {
		w.fail(n, p, "%q is not a clean path (want %q)", v, clean)
		return "", false
	}
	if len(dir)+2 > MaxAllowWriteLen {
		w.fail(n, p, "%q is longer than %d bytes", v, MaxAllowWriteLen)
		return "", false
	}
	return v, true
}

// MaxAllowWriteLen bounds an allowWrites entry: the kernel matches on the
// first 248 bytes of a path.
const MaxAllowWriteLen = 240

func (w *walker) iface(n *yaml.Node, p string) (string, bool) {
	v, ok := w.str(n, p)
	if ok && (!isInterfaceName(v) || v == "." || v == "..") {
		w.fail(n, p, "%q is not an interface name (1 to 15 characters, no '/', ':' or spaces)", v)
		return "", false
	}
	return v, ok
}

func (w *walker) registry(n *yaml.Node, p string) (string, bool) {
	v, ok := w.str(n, p)
	if ok && !isRegistryHost(v) {
		w.fail(n, p, "%q is not a registry host (host or host:port)", v)
		return "", false
	}
	return v, ok
}

// portRange accepts "8080", 8080 and "9000-9100".
func (w *walker) portRange(n *yaml.Node, p string) (string, bool) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!int") {
		w.fail(n, p, "must be a port or a range like \"9000-9100\", not %s", kindName(n))
		return "", false
	}
	if _, _, err := parsePorts(n.Value); err != nil {
		w.fail(n, p, "%v", err)
		return "", false
	}
	return n.Value, true
}

func parsePorts(s string) (uint16, uint16, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	from, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	to, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	switch {
	case err1 != nil || err2 != nil:
		return 0, 0, fmt.Errorf("%q is not a port (1-65535) or a range like \"9000-9100\"", s)
	case from == 0 || to == 0:
		return 0, 0, fmt.Errorf("%q: port 0 cannot be allowed", s)
	case from > to:
		return 0, 0, fmt.Errorf("%q: the range ends before it starts", s)
	}
	return uint16(from), uint16(to), nil
}
