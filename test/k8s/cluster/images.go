package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ringfence/ringfence/deploy/image"
)

// importImages builds and imports the pause image (Kubernetes' pause.c,
// linked statically) and the workloads' busybox image (Debian's
// busybox-static with a link per applet).
func (c *Cluster) importImages(ctx context.Context) error {
	pause := c.path("images/pause")
	if err := os.MkdirAll(filepath.Dir(pause), 0o755); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "gcc", "-static", "-O2", "-o", pause, c.cfg.PauseSource).CombinedOutput(); err != nil {
		return fmt.Errorf("gcc %s: %v: %s", c.cfg.PauseSource, err, out)
	}
	pauseBin, err := os.ReadFile(pause)
	if err != nil {
		return err
	}
	bb, err := busyboxFiles(ctx)
	if err != nil {
		return err
	}
	for _, img := range []struct {
		ref  string
		spec image.Spec
	}{
		{PauseImage, image.Spec{Files: []image.File{{Path: "pause", Mode: 0o755, Data: pauseBin}}, Entrypoint: []string{"/pause"}}},
		{BusyboxImage, image.Spec{Files: append(bb, c.cfg.WorkloadFiles...), Cmd: []string{"sh"}}},
	} {
		built, err := image.Build(img.spec)
		if err != nil {
			return err
		}
		archive := c.path("images/" + strings.NewReplacer("/", "_", ":", "_").Replace(img.ref) + ".tar")
		if _, err := image.WriteArchive(built, img.ref, archive); err != nil {
			return err
		}
		if err := c.Import(ctx, archive); err != nil {
			return err
		}
	}
	return nil
}

// busyboxFiles is /bin/busybox and a link to it for each of its applets.
func busyboxFiles(ctx context.Context) ([]image.File, error) {
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, fmt.Errorf("busybox-static: %w", err)
	}
	list, err := exec.CommandContext(ctx, "/bin/busybox", "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	files := []image.File{{Path: "bin/busybox", Mode: 0o755, Data: data}}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			files = append(files, image.File{Path: "bin/" + applet, Link: "busybox"})
		}
	}
	return files, nil
}
