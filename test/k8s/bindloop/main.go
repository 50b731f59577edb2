// Command bindloop is a workload of the cluster test: it binds and listens
// on one address again and again for a while and prints, as one JSON line,
// how many attempts there were and how each ended. A test reads it to
// prove that not one forbidden bind went through (during a policy change,
// a restart of the agent, a rolling update of the DaemonSet).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"net"
	"os"
	"syscall"
	"time"
)

// counts is the result line.
type counts struct {
	Attempts  int `json:"attempts"`
	Succeeded int `json:"succeeded"`
	Refused   int `json:"refused"` // EPERM: the policy
	Other     int `json:"other"`
}

func main() {
	addr := flag.String("addr", "0.0.0.0:9092", "address to listen on")
	every := flag.Duration("every", 5*time.Millisecond, "pause between attempts")
	span := flag.Duration("for", 3*time.Second, "how long to keep trying")
	flag.Parse()
	var c counts
	for end := time.Now().Add(*span); time.Now().Before(end); time.Sleep(*every) {
		c.Attempts++
		ln, err := net.Listen("tcp", *addr)
		switch {
		case err == nil:
			c.Succeeded++
			ln.Close()
		case errors.Is(err, syscall.EPERM):
			c.Refused++
		default:
			c.Other++
		}
	}
	json.NewEncoder(os.Stdout).Encode(c)
}
