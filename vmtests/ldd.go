package vmtests

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ParseLdd returns the absolute paths of the shared objects listed in the
// output of ldd(1), the dynamic loader included, in the order listed and
// without duplicates. Entries without a file (the vDSO) are skipped; the
// output of ldd for a static binary gives no paths. A library that ldd
// could not find is an error naming it.
func ParseLdd(out string) ([]string, error) {
	var paths, missing []string
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var p string
		if lib, rest, ok := strings.Cut(line, "=>"); ok {
			rest = strings.TrimSpace(rest)
			if strings.HasPrefix(rest, "not found") {
				missing = append(missing, strings.TrimSpace(lib))
				continue
			}
			p, _, _ = strings.Cut(rest, " ")
		} else {
			p, _, _ = strings.Cut(line, " ")
		}
		if !strings.HasPrefix(p, "/") || seen[p] {
			continue
		}
		seen[p] = true
		paths = append(paths, p)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("ldd: not found: %s", strings.Join(missing, ", "))
	}
	return paths, nil
}

// elfInterpreter returns the dynamic loader (PT_INTERP) named by the ELF
// file at path, or "" when the file is statically linked or not an ELF file
// at all (a shell script, for instance).
func elfInterpreter(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) || errors.Is(err, io.EOF) {
			return "", nil
		}
		return "", err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return "", fmt.Errorf("%s: read PT_INTERP: %w", path, err)
		}
		return strings.TrimRight(string(b), "\x00"), nil
	}
	return "", nil
}

// sharedObjects returns the shared libraries and dynamic loader that the
// file at path needs, or nothing when it is not a dynamically linked ELF.
func sharedObjects(ctx context.Context, path string) ([]string, error) {
	interp, err := elfInterpreter(path)
	if err != nil || interp == "" {
		return nil, err
	}
	out, err := runCommand(ctx, "", "ldd", path)
	if err != nil {
		return nil, err
	}
	libs, err := ParseLdd(string(out))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, l := range libs {
		if l == interp {
			return libs, nil
		}
	}
	if _, err := os.Stat(interp); err != nil {
		return nil, fmt.Errorf("%s: dynamic loader: %w", path, err)
	}
	return append(libs, interp), nil
}
