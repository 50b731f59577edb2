package enforce

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Expand turns policy paths (files, or directories of *.yaml and *.yml
// files) into the files they name, in order: each directory's files sorted
// by name. A directory with no policy file is not an error.
func Expand(paths ...string) ([]string, error) {
	var out []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("policy path: %w", err)
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("policy path: %w", err)
		}
		var files []string
		for _, e := range entries {
			name := e.Name()
			if e.Type().IsRegular() && !strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
				files = append(files, filepath.Join(p, name))
			}
		}
		slices.Sort(files)
		out = append(out, files...)
	}
	return out, nil
}

// LoadPaths is LoadFiles over what Expand finds, for a daemon that puts
// the policies in force; it also returns the files. A file owned by
// another user than root or the caller, or that others can write, is
// refused: whoever can change it could switch the rules off.
func LoadPaths(paths ...string) ([]RuntimePolicy, []string, Problems) {
	files, err := Expand(paths...)
	if err != nil {
		return nil, nil, Problems{{Message: err.Error()}}
	}
	var problems Problems
	for _, f := range files {
		if err := trusted(f); err != nil {
			problems = append(problems, Problem{File: f, Message: err.Error()})
		}
	}
	if len(problems) > 0 {
		return nil, files, problems
	}
	pols, problems := LoadFiles(files...)
	return pols, files, problems
}

// trusted refuses a policy file that someone other than root or the
// caller owns or can write.
func trusted(p string) error {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return err
	}
	if uid := uint32(os.Geteuid()); st.Uid != 0 && st.Uid != uid {
		return fmt.Errorf("owned by uid %d: a policy file must belong to root (or the daemon's user)", st.Uid)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("mode %04o lets others write it: a policy file must be writable by its owner only", st.Mode&0o7777)
	}
	return nil
}

// Fingerprint summarises the policy paths' files (names, sizes, times), so
// that a change, an added or a removed file can be noticed by comparing two.
func Fingerprint(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&b, "%s;", p)
		files, err := Expand(p)
		if err != nil {
			fmt.Fprintf(&b, "error %v;", err)
			continue
		}
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil {
				fmt.Fprintf(&b, "%s %d %d;", f, fi.Size(), fi.ModTime().UnixNano())
			}
		}
	}
	return b.String()
}
