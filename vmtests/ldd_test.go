package vmtests

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseLdd(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    []string
		wantErr string
	}{
		{
			name: "dynamic binary",
			out: "\tlinux-vdso.so.1 (0x00007ffd5a1f2000)\n" +
				"\tlibseccomp.so.2 => /lib/x86_64-linux-gnu/libseccomp.so.2 (0x00007f3c1a2b0000)\n" +
				"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3c1a0cf000)\n" +
				"\t/lib64/ld-linux-x86-64.so.2 (0x00007f3c1a2e5000)\n",
			want: []string{"/lib/x86_64-linux-gnu/libseccomp.so.2", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"},
		},
		{
			name: "old vdso style and duplicates",
			out: "\tlinux-gate.so.1 =>  (0xb7f0d000)\n" +
				"\tlibc.so.6 => /lib/libc.so.6 (0xb7d8f000)\n" +
				"\tlibc.so.6 => /lib/libc.so.6 (0xb7d8f000)\n" +
				"\t/lib/ld-linux.so.2 (0xb7f0e000)\n",
			want: []string{"/lib/libc.so.6", "/lib/ld-linux.so.2"},
		},
		{name: "static binary", out: "\tnot a dynamic executable\n", want: nil},
		{name: "statically linked", out: "\tstatically linked\n", want: nil},
		{
			name:    "missing library",
			out:     "\tlibfoo.so.1 => not found\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n\tlibbar.so => not found\n",
			wantErr: "ldd: not found: libfoo.so.1, libbar.so",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLdd(tc.out)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("ParseLdd = %v, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseLdd = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestElfInterpreter(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		dynamic bool
		wantErr bool
	}{
		{name: "shell script is not ELF", path: script},
		// The test binary itself: static or dynamic depending on cgo, but
		// it must parse; only its error result is checked.
		{name: "own test binary", path: self, dynamic: strings.Contains(mustInterp(t, self), "ld-")},
		{name: "missing file", path: filepath.Join(dir, "nope"), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			interp, err := elfInterpreter(tc.path)
			if (err != nil) != tc.wantErr {
				t.Fatalf("elfInterpreter(%s) error = %v, wantErr %v", tc.path, err, tc.wantErr)
			}
			if (interp != "") != tc.dynamic {
				t.Errorf("elfInterpreter(%s) = %q, want dynamic=%v", tc.path, interp, tc.dynamic)
			}
		})
	}
}

// mustInterp returns the ELF interpreter of path or fails the test.
func mustInterp(tb testing.TB, path string) string {
	tb.Helper()
	interp, err := elfInterpreter(path)
	if err != nil {
		tb.Fatal(err)
	}
	return interp
}
