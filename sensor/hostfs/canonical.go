package hostfs

import (
	"os"
	"path/filepath"
	"strings"
)

// maxLinks bounds the symlinks one resolution follows, as the kernel does.
const maxLinks = 40

// Canonical resolves p, a path in a mount namespace whose root directory
// is visible on the host at root, the way the kernel resolves it: ".."
// stays at the root, symlinks are read (a relative target from its
// directory, an absolute one from the root), and /proc/self/root (or
// /proc/<pid>/root) leads back to the root. follow says whether a final
// symlink is followed (open does; unlink does not). Names that do not exist
// are kept as they are: a file about to be made. It returns the path from
// the root. Reading the container's files from the host, it sees what the
// kernel saw only if they did not change meanwhile: good for an audit.
func Canonical(root, p string, follow bool) string {
	var out []string
	rest := split(p)
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch {
		case c == "" || c == ".":
			continue
		case c == "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			continue
		case c == "root" && len(out) == 2 && out[0] == "proc" && procSelf(out[1]):
			out = out[:0]
			continue
		}
		out = append(out, c)
		if len(rest) == 0 && !follow {
			break
		}
		host := filepath.Join(root, filepath.Join(out...))
		fi, err := os.Lstat(host)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			continue
		}
		target, err := os.Readlink(host)
		if links++; err != nil || links > maxLinks {
			continue
		}
		out = out[:len(out)-1]
		if strings.HasPrefix(target, "/") {
			out = out[:0]
		}
		rest = append(split(target), rest...)
	}
	return "/" + strings.Join(out, "/")
}

func split(p string) []string { return strings.Split(p, "/") }

// procSelf reports whether a /proc entry names a process: self,
// thread-self or a pid.
func procSelf(name string) bool {
	if name == "self" || name == "thread-self" {
		return true
	}
	_, err := parseUint32(name)
	return err == nil
}

// Below reports whether p is dir or below it (both clean and absolute),
// and p's path from dir.
func Below(p, dir string) (string, bool) {
	if dir == "/" {
		return p, true
	}
	if p == dir {
		return "/", true
	}
	if rest, ok := strings.CutPrefix(p, dir+"/"); ok {
		return "/" + rest, true
	}
	return "", false
}
