package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/ringfence/ringfence/sensor/api"
	"github.com/ringfence/ringfence/sensor/posture"
)

// postureCmd is `ringfence posture [-o table|json]`: the CIS findings of
// every running container, from the daemon.
func postureCmd(args []string, stdout, stderr io.Writer) int {
	socket, output, ok := clientFlags("posture", args, stderr)
	if !ok {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reports, err := api.NewClient(socket).Posture(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "ringfence posture: daemon at %s: %v\n", socket, err)
		return 1
	}
	write := posture.WriteTable
	if output == "json" {
		write = posture.WriteJSON
	}
	if err := write(stdout, reports); err != nil {
		fmt.Fprintf(stderr, "ringfence posture: %v\n", err)
		return 1
	}
	return 0
}
