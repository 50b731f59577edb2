package image

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestArchiveReproducible writes the archive of the same files twice (given
// in another order the second time) and of changed files once: the same
// inputs give the same bytes, a change gives others, and the archive reads
// back with its entrypoint and no build time.
func TestArchiveReproducible(t *testing.T) {
	dir := t.TempDir()
	write := func(out string, files ...File) []byte {
		t.Helper()
		img, err := Build(Spec{Files: files, Entrypoint: []string{"/bin/x"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := WriteArchive(img, "x:v1", filepath.Join(dir, out)); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, out))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	bin := File{Path: "bin/x", Mode: 0o755, Data: []byte("one")}
	link := File{Path: "bin/y", Link: "x"}
	a, b := write("a.tar", bin, link), write("b.tar", link, bin)
	if !bytes.Equal(a, b) {
		t.Fatal("two archives of the same files differ")
	}
	bin.Data = []byte("two")
	if c := write("c.tar", bin, link); bytes.Equal(a, c) {
		t.Fatal("archives of different files are equal")
	}
	img, err := tarball.ImageFromPath(filepath.Join(dir, "a.tar"), nil)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Config.Entrypoint; len(got) != 1 || got[0] != "/bin/x" {
		t.Errorf("entrypoint %q, want [/bin/x]", got)
	}
	if !cfg.Created.IsZero() {
		t.Errorf("created %v: a build time makes the digest depend on when it was built", cfg.Created)
	}
}

// TestBadName names the image name that cannot be a tag.
func TestBadName(t *testing.T) {
	img, err := Build(Spec{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = WriteArchive(img, "bad tag!", filepath.Join(t.TempDir(), "x.tar"))
	if err == nil || !strings.Contains(err.Error(), `"bad tag!"`) {
		t.Fatalf("got %v, want an error naming the image name", err)
	}
}
