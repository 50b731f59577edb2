package enforce

import (
	"fmt"
	"path"
	"strings"

	"github.com/distribution/reference"
)

// Image is a container image reference in its normalised form: busybox is
// docker.io/library/busybox:latest.
type Image struct {
	// Ref is the full normalised reference, tag and digest included.
	Ref string
	// Name is the repository without tag or digest: docker.io/library/busybox.
	Name string
	// Registry is the host (and port) of Name: docker.io.
	Registry string
}

// ParseImage normalises a reference as the container runtimes do.
func ParseImage(ref string) (Image, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return Image{}, fmt.Errorf("image reference %q: %w", ref, err)
	}
	named = reference.TagNameOnly(named)
	return Image{Ref: named.String(), Name: named.Name(), Registry: reference.Domain(named)}, nil
}

// imageGlob is a selector pattern over normalised references. A pattern
// that is itself a plain reference (no wildcard) is normalised too, so
// "busybox" selects docker.io/library/busybox:latest.
type imageGlob string

func newImageGlob(pattern string) imageGlob {
	if !strings.ContainsAny(pattern, "*?[") {
		if named, err := reference.ParseNormalizedNamed(pattern); err == nil {
			return imageGlob(named.String())
		}
	}
	return imageGlob(pattern)
}

// matches reports whether the pattern matches the reference, with or
// without its tag and digest. A '*' does not cross '/'.
func (g imageGlob) matches(img Image) bool {
	for _, s := range []string{img.Ref, img.Name} {
		if ok, _ := path.Match(string(g), s); ok {
			return true
		}
	}
	return false
}

// FromRegistry reports whether img comes from one of the registries
// (host or host:port, compared without case).
func FromRegistry(img Image, registries []string) bool {
	for _, r := range registries {
		if strings.EqualFold(r, img.Registry) {
			return true
		}
		// docker.io and its aliases name one registry.
		if img.Registry == "docker.io" && (strings.EqualFold(r, "index.docker.io") || strings.EqualFold(r, "registry-1.docker.io")) {
			return true
		}
	}
	return false
}
