// Command ringfence is the node sensor and its command-line client.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: ringfence <command> [flags]

commands:
  run        run the sensor daemon (event store, API socket, metrics, JSON lines on stdout)
  status     show the kernel tier, hooks, what is enforceable, and losses
  events     query stored events, or follow live ones
  containers list the containers the daemon knows, with their policies
  posture    CIS Docker Benchmark checks of each running container's OCI spec
  policy     check policy files: ringfence policy check FILE...
  uninstall  detach the pinned programs, remove the pins, let go every held process
  health     ask a daemon's --health-socket whether it is alive or ready (the DaemonSet's probes)
  version    print the version
`

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func([]string, io.Writer, io.Writer) int{
		"run":        runCmd,
		"status":     statusCmd,
		"events":     eventsCmd,
		"containers": containersCmd,
		"posture":    postureCmd,
		"policy":     policyCmd,
		"uninstall":  uninstallCmd,
		"health":     healthCmd,
		"version":    func([]string, io.Writer, io.Writer) int { fmt.Fprintln(stdout, "ringfence", version); return 0 },
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "ringfence: unknown command %q\n%s", args[0], usage)
		return 2
	}
	return cmd(args[1:], stdout, stderr)
}
