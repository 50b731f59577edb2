// Package image builds container images as archives that `ctr images
// import` and registry tools load, with no registry and no container
// engine: ringfence's own image (make image) and the cluster test's small
// ones. Every byte of an archive follows from its inputs (no build time, no
// owner, no host name), so the same inputs give the same digest.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one entry of an image's file system, owned by root.
type File struct {
	Path string // relative to the root, without a leading '/'
	Mode int64  // permission bits
	Data []byte
	// Link, when set, makes the entry a symbolic link to it.
	Link string
}

// Spec is what an image holds and runs.
type Spec struct {
	Files      []File
	Entrypoint []string
	Cmd        []string
	Env        []string
	Labels     map[string]string
}

// Build assembles a linux/amd64 image of one layer with an OCI manifest.
func Build(s Spec) (v1.Image, error) {
	layerTar, err := layerOf(s.Files)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Config = v1.Config{Entrypoint: s.Entrypoint, Cmd: s.Cmd, Env: s.Env, Labels: s.Labels}
	return mutate.ConfigFile(img, cfg)
}

// layerOf is the layer's tar stream: the files in path order, so that the
// order they were given in does not change the digest.
func layerOf(files []File) ([]byte, error) {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	for _, f := range files {
		hdr := &tar.Header{Name: f.Path, Typeflag: tar.TypeReg, Mode: f.Mode, Size: int64(len(f.Data)), Format: tar.FormatPAX}
		if f.Link != "" {
			hdr = &tar.Header{Name: f.Path, Typeflag: tar.TypeSymlink, Linkname: f.Link, Mode: 0o777, Format: tar.FormatPAX}
		}
		if err := w.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("layer: %s: %w", f.Path, err)
		}
		if _, err := w.Write(f.Data); err != nil {
			return nil, fmt.Errorf("layer: %s: %w", f.Path, err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteArchive writes img, tagged ref (NAME:TAG, no registry assumed), to
// the file out, and returns the image's manifest digest.
func WriteArchive(img v1.Image, ref, out string) (v1.Hash, error) {
	tag, err := name.NewTag(ref, name.WithDefaultRegistry(""))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image name %q: %w", ref, err)
	}
	if err := tarball.WriteToFile(out, tag, img); err != nil {
		return v1.Hash{}, fmt.Errorf("write %s: %w", out, err)
	}
	return img.Digest()
}
