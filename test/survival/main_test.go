package survival

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The generator's settings, given to the test binary run in a container.
const (
	genEnv = "RF_SURVIVAL_GEN"
	outEnv = "RF_SURVIVAL_OUT"
)

func TestMain(m *testing.M) {
	switch os.Getenv(genEnv) {
	case "loop":
		os.Exit(loop(os.Getenv(outEnv)))
	case "ran":
		fmt.Println("ran")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// loop tries, every 5 ms until killed, a bind to 0.0.0.0:9090 and a write
// to /etc, and appends each outcome to out as "UNIXNANO OP ok|ERRNO".
func loop(out string) int {
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		now := time.Now().UnixNano()
		fmt.Fprintf(f, "%d bind %s\n%d write %s\n", now, outcome(tryBind(9090)), now, outcome(tryWrite("/etc/rf-survival")))
		time.Sleep(5 * time.Millisecond)
	}
}

func tryBind(port int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	return unix.Bind(fd, &unix.SockaddrInet4{Port: port})
}

func tryWrite(path string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

func outcome(err error) string {
	var errno unix.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &errno):
		return unix.ErrnoName(errno)
	}
	return "error"
}
