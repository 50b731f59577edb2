package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringfence/ringfence/sensor/api"
)

func containersCmd(args []string, stdout, stderr io.Writer) int {
	socket, output, ok := clientFlags("containers", args, stderr)
	if !ok {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := api.NewClient(socket).Containers(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "ringfence containers: daemon at %s: %v\n", socket, err)
		return 1
	}
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(list)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "ID\tNAME\tIMAGE\tPOD\tCGROUP ID\tWATCHED SINCE\tSTATE\tPOLICIES")
	for _, c := range list {
		id := c.ID
		if len(id) > 12 {
			id = id[:12]
		}
		pod := "-"
		if c.Pod != "" {
			pod = c.PodNamespace + "/" + c.Pod
		}
		since := c.WatchedSince
		state := "running"
		if !c.Exited.IsZero() {
			state = "exited " + c.Exited.Local().Format(time.TimeOnly)
		}
		pols := strings.Join(c.Policies, ",")
		if pols == "" {
			pols = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", id, c.Name, c.Image, pod, c.CgroupID, since.Local().Format(time.RFC3339), state, pols)
	}
	return 0
}

// clientFlags parses the flags of the commands that ask the daemon:
// --api-socket and -o table|json.
func clientFlags(name string, args []string, stderr io.Writer) (socket, output string, ok bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&socket, "api-socket", api.DefaultSocket, "unix socket of the daemon")
	fs.StringVar(&output, "o", "table", "output format: table or json")
	if err := fs.Parse(args); err != nil {
		return "", "", false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ringfence %s: unexpected argument %q\n", name, fs.Arg(0))
		return "", "", false
	}
	if output != "table" && output != "json" {
		fmt.Fprintf(stderr, "ringfence %s: -o: %q is not table or json\n", name, output)
		return "", "", false
	}
	return socket, output, true
}
