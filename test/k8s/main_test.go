package k8s

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ringfence/ringfence/test/k8s/cluster"
	"github.com/ringfence/ringfence/test/testenv"
)

// Environment the Makefile's k8stest target sets.
const (
	kubeBinEnv = "RINGFENCE_KUBE_BIN"  // scripts/kube-build.sh's output
	pauseEnv   = "RINGFENCE_PAUSE_SRC" // Kubernetes' build/pause/linux/pause.c
	imageEnv   = "RINGFENCE_IMAGE"     // make image's archive
	versionEnv = "RINGFENCE_VERSION"   // its tag
)

// shared is the one cluster of the test binary: brought up by the first
// test that needs it, taken down (and the host checked) by TestMain.
var shared struct {
	once   sync.Once
	c      *cluster.Cluster
	err    error
	before cluster.HostState
	up     bool
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.up {
		start := time.Now()
		if err := shared.c.Down(); err != nil {
			fmt.Fprintf(os.Stderr, "cluster down: %v\n", err)
			code = 1
		}
		fmt.Fprintf(os.Stderr, "cluster down in %s\n", time.Since(start).Round(time.Millisecond))
		if diff := cluster.SnapshotHost(os.Getenv(kubeBinEnv)).Diff(shared.before); len(diff) > 0 {
			fmt.Fprintf(os.Stderr, "the cluster run left the host changed:\n")
			for _, d := range diff {
				fmt.Fprintf(os.Stderr, "  %s\n", d)
			}
			code = 1
		}
	}
	os.Exit(code)
}

// needCluster returns the running cluster, bringing it up on first use.
func needCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	testenv.Privileged(t)
	bin := os.Getenv(kubeBinEnv)
	if bin == "" {
		testenv.Unavailable(t, kubeBinEnv+" is not set: run make k8stest")
	}
	shared.once.Do(func() {
		pause := os.Getenv(pauseEnv)
		if _, err := os.Stat(pause); err != nil {
			shared.err = fmt.Errorf("%s: %w", pauseEnv, err)
			return
		}
		shared.before = cluster.SnapshotHost(bin)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		shared.c, shared.err = cluster.Up(ctx, cluster.Config{KubeBin: bin, PauseSource: pause, WorkloadFiles: workloadFiles(t), Logf: t.Logf})
		shared.up = shared.err == nil
		if shared.up {
			t.Logf("cluster up in %s", shared.c.Started.Round(time.Millisecond))
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.c
}

// repoRoot is the repository's top directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
