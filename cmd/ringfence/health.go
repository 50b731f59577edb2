package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// The health socket is answered by this process only. On a node's host
// network the TCP address of --metrics-addr is shared (SO_REUSEPORT) by the
// daemon in charge and the one in standby beside it, so a probe sent there
// may be answered by the other process: the kubelet would count a pod
// Ready on its neighbour's word. The DaemonSet's probes ask the socket in
// the pod's own volume instead (`ringfence health`).

// healthSwitch serves the health checks of the daemon's current stage:
// starting, standby, then the running sensor.
type healthSwitch struct{ h atomic.Pointer[http.Handler] }

func newHealthSwitch() *healthSwitch {
	s := &healthSwitch{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok: starting\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not ready: starting", http.StatusServiceUnavailable)
	})
	s.set(mux)
	return s
}

// set makes h answer from now on; a nil switch (no socket) ignores it.
func (s *healthSwitch) set(h http.Handler) {
	if s != nil {
		s.h.Store(&h)
	}
}

func (s *healthSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

// serveHealth listens on the unix socket path (a socket left there by an
// earlier process of the same pod, which nothing answers, is replaced; a
// socket another process answers on, or any other file, is refused) and
// serves sw until ctx ends.
func serveHealth(ctx context.Context, path string, sw *healthSwitch) error {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("%s: another process answers on it", path)
		}
		if err := os.Remove(path); err != nil {
			return err
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: sw, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	context.AfterFunc(ctx, func() { srv.Close() })
	return nil
}

const healthUsage = `usage: ringfence health --socket PATH [healthz|readyz]

Asks the daemon whose --health-socket is PATH (that process, no other) for
healthz (it answers) or readyz (its rules are in force: it enforces, or it is
in standby while the pinned set enforces; the default). Prints the answer;
exits 0 when the answer is ok, 1 when not or when nothing answers.
`

func healthCmd(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("health", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, healthUsage) }
	socket := fl.String("socket", "", "the daemon's --health-socket")
	timeout := fl.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	check := "readyz"
	switch {
	case *socket == "":
		fmt.Fprintf(stderr, "ringfence health: --socket: a socket path is required\n%s", healthUsage)
		return 2
	case fl.NArg() > 1:
		fmt.Fprintf(stderr, "ringfence health: unexpected argument %q\n", fl.Arg(1))
		return 2
	case fl.NArg() == 1:
		check = fl.Arg(0)
		if check != "healthz" && check != "readyz" {
			fmt.Fprintf(stderr, "ringfence health: %q: the check is healthz or readyz\n", check)
			return 2
		}
	}
	body, err := askHealth(*socket, check, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "ringfence health: %s: %v\n", check, err)
		return 1
	}
	fmt.Fprint(stdout, body)
	return 0
}

// askHealth gets /check from the socket: the body when the answer is 200.
func askHealth(socket, check string, timeout time.Duration) (string, error) {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	resp, err := c.Get("http://ringfence/" + check)
	if err != nil {
		return "", fmt.Errorf("--socket %s: %w", socket, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s (%s)", string(b), resp.Status)
	}
	return string(b), nil
}
