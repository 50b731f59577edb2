// Command mkimage builds ringfence's container image archive from the static
// binary: `make image` runs it. The same binary and version give the same
// archive, byte for byte, so the same digest.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ringfence/ringfence/deploy/image"
)

func main() {
	bin := flag.String("binary", "build/ringfence", "the static ringfence binary to ship")
	version := flag.String("version", "", "image tag: the image is named ringfence:VERSION")
	out := flag.String("o", "", "archive to write")
	flag.Parse()
	if *version == "" || *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: mkimage -binary FILE -version VERSION -o ARCHIVE.tar")
		os.Exit(2)
	}
	if err := run(*bin, *version, *out); err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
}

// run writes the image of the binary. The binary is static and the sensor
// execs nothing, so the image holds nothing else: what the sensor reads at
// run time (/proc, the host's cgroup2 and bpffs, the containerd socket, the
// service account token) the DaemonSet mounts.
func run(bin, version, out string) error {
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	img, err := image.Build(image.Spec{
		// In PATH, so that `kubectl exec ds/ringfence -- ringfence status` works.
		Files:      []image.File{{Path: "usr/bin/ringfence", Mode: 0o755, Data: data}},
		Entrypoint: []string{"/usr/bin/ringfence"},
		Cmd:        []string{"run"},
		Env:        []string{"PATH=/usr/bin"},
		Labels:     map[string]string{"org.opencontainers.image.title": "ringfence", "org.opencontainers.image.version": version},
	})
	if err != nil {
		return err
	}
	digest, err := image.WriteArchive(img, "ringfence:"+version, out)
	if err != nil {
		return fmt.Errorf("-version: %w", err)
	}
	fmt.Printf("%s ringfence:%s %s\n", out, version, digest)
	return nil
}
