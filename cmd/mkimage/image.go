package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// binaryPath is where the image holds the sensor. The binary is static and
// the sensor execs nothing: the image needs no other file. What it reads at
// run time (/proc, the host's cgroup2, bpffs, the containerd socket, the
// service account's token) is mounted by the DaemonSet.
const binaryPath = "ringfence"

// buildImage assembles the image of binary: one layer holding it, an OCI
// manifest, and a config whose every field is fixed by the inputs (no
// build time, no host name), so that the digest depends on them only.
func buildImage(binary []byte, version string) (v1.Image, error) {
	layerTar, err := layerOf(binary)
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
	cfg.Config = v1.Config{
		Entrypoint: []string{"/" + binaryPath},
		Cmd:        []string{"run"},
		Labels: map[string]string{
			"org.opencontainers.image.title":   "ringfence",
			"org.opencontainers.image.version": version,
		},
	}
	return mutate.ConfigFile(img, cfg)
}

// layerOf is the layer's file system: the binary, executable by root only
// (the sensor runs as root; nobody else has a use for it).
func layerOf(binary []byte) ([]byte, error) {
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	hdr := &tar.Header{Name: binaryPath, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(binary)), Format: tar.FormatPAX}
	if err := w.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := w.Write(binary); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeArchive writes the image of the binary file, tagged ringfence:VERSION,
// as an archive that `ctr images import` (and registry tools) load. It
// returns the image's manifest digest.
func writeArchive(binaryFile, version, out string) (v1.Hash, error) {
	binary, err := os.ReadFile(binaryFile)
	if err != nil {
		return v1.Hash{}, err
	}
	tag, err := name.NewTag("ringfence:"+version, name.WithDefaultRegistry(""))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("-version %q: %w", version, err)
	}
	img, err := buildImage(binary, version)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := tarball.WriteToFile(out, tag, img); err != nil {
		return v1.Hash{}, fmt.Errorf("write %s: %w", out, err)
	}
	return img.Digest()
}
