// Command mkimage builds ringfence's container image archive from the static
// binary: `make image` runs it. The same binary and version give the same
// archive, byte for byte, so the same digest.
package main

import (
	"flag"
	"fmt"
	"os"
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
	digest, err := writeArchive(*bin, *version, *out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%s ringfence:%s %s\n", *out, *version, digest)
}
