package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestWaitForSaysWhyItExited: a component that dies before it is ready
// fails the wait with the end of its log, which goes with the cluster's
// directory when the test ends.
func TestWaitForSaysWhyItExited(t *testing.T) {
	p, err := start(t.TempDir(), "kubelet", "/bin/sh", "-c", "echo starting; echo 'failed to run Kubelet: no such thing' >&2; exit 1")
	if err != nil {
		t.Fatal(err)
	}
	err = waitFor(context.Background(), p, "its node ready", func() error { return errors.New("not yet") })
	if err == nil || !strings.Contains(err.Error(), "kubelet exited") || !strings.Contains(err.Error(), "failed to run Kubelet: no such thing") {
		t.Fatalf("waitFor: %v, want the exit and the log's end", err)
	}
}
