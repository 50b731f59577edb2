package api

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/container"
	"github.com/ringfence/ringfence/sensor/posture"
	"github.com/ringfence/ringfence/sensor/status"
)

// clientEnv makes the test binary a client of the socket it names, so that
// a test can ask the API as another user.
const clientEnv = "RINGFENCE_API_TEST_CLIENT"

func TestMain(m *testing.M) {
	if path := os.Getenv(clientEnv); path != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := NewClient(path).Status(ctx)
		fmt.Printf("uid %d: %v\n", os.Getuid(), err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeBackend answers the server's questions with fixed values.
type fakeBackend struct{}

func (fakeBackend) Snapshot() *status.Snapshot        { return &status.Snapshot{Version: "test"} }
func (fakeBackend) Watched() ([]uint64, error)        { return []uint64{7}, nil }
func (fakeBackend) Containers() []container.Info      { return nil }
func (fakeBackend) PoliciesOf(cgroup uint64) []string { return nil }
func (fakeBackend) Posture() []posture.Report         { return nil }

// serve runs a server with a hub on a socket in a fresh directory and
// returns the socket's path.
func serve(tb testing.TB, hub *Hub, storeDir string) string {
	tb.Helper()
	path := tb.TempDir() + "/run/api.sock"
	ln, err := Listen(path)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(fakeBackend{}, hub, storeDir, nil).Serve(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("serve: %v", err)
		}
	})
	return path
}
