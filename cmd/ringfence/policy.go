package main

import (
	"fmt"
	"io"

	"github.com/ringfence/ringfence/enforce"
)

// policyCmd is `ringfence policy check FILE...`: exit 0 when every file is
// valid, 1 with one line per problem otherwise.
func policyCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: ringfence policy check FILE...")
		return 2
	}
	files := args[1:]
	if len(files) == 0 {
		fmt.Fprintln(stderr, "ringfence policy check: give at least one FILE")
		return 2
	}
	pols, problems := enforce.LoadFiles(files...)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stdout, p)
		}
		fmt.Fprintf(stderr, "ringfence policy check: %d problem(s)\n", len(problems))
		return 1
	}
	for _, p := range pols {
		fmt.Fprintf(stdout, "%s:%d: %s: valid (%s)\n", p.Source.File, p.Source.Line, p.Name, p.Spec.Mode)
	}
	return 0
}
