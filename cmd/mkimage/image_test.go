package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestArchiveReproducible writes the archive of one binary twice, and of a
// changed binary once: the same inputs give the same bytes and digest, a
// change gives another, and the archive reads back as ringfence:VERSION
// with the binary executable at /ringfence.
func TestArchiveReproducible(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "ringfence")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(bin, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	build := func(out string) []byte {
		t.Helper()
		if _, err := writeArchive(bin, "v1", filepath.Join(dir, out)); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, out))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	write("binary one")
	a, b := build("a.tar"), build("b.tar")
	if !bytes.Equal(a, b) {
		t.Fatal("two archives of the same binary differ")
	}
	write("binary two")
	if c := build("c.tar"); bytes.Equal(a, c) {
		t.Fatal("archives of different binaries are equal")
	}
	img, err := tarball.ImageFromPath(filepath.Join(dir, "a.tar"), nil)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Config.Entrypoint; len(got) != 1 || got[0] != "/ringfence" {
		t.Errorf("entrypoint %q, want [/ringfence]", got)
	}
	if !cfg.Created.IsZero() {
		t.Errorf("created %v: a build time makes the digest depend on when it was built", cfg.Created)
	}
}

// TestBadVersion names the flag when the tag cannot be made.
func TestBadVersion(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ringfence")
	if err := os.WriteFile(bin, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := writeArchive(bin, "bad tag!", filepath.Join(t.TempDir(), "x.tar"))
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("-version")) {
		t.Fatalf("got %v, want an error naming -version", err)
	}
}
