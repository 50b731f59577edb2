// Command bench measures the overhead the ringfence sensor adds to common
// system calls, for processes it watches and for processes it does not.
//
//	go run ./test/bench -ringfence build/ringfence [-rounds 5]
//
// It must run as root: it loads the sensor and creates cgroups.
package main

import "os"

func main() {
	// Checked first so a re-executed fork+exec target costs as little as possible.
	if os.Getenv(envExit) != "" {
		os.Exit(0)
	}
	if name := os.Getenv(envWorkload); name != "" {
		os.Exit(childMain(name))
	}
	os.Exit(parentMain(os.Args[1:]))
}
