package vmtests

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteReport prints, for each kernel with failed tests, those tests with
// their last lines, and then one table row per kernel: series, package,
// PASS or FAIL with the reason, boot time, test time and total duration.
// The table ends the output and the failures come just before it, so the
// last lines of a long run say what failed and why.
func WriteReport(w io.Writer, results []KernelResult) error {
	for _, r := range results {
		if len(r.Failures) == 0 {
			continue
		}
		fmt.Fprintf(w, "[%s] failed tests (the whole console log: %s):\n", r.Series, r.Log)
		for _, f := range r.Failures {
			fmt.Fprintf(w, "[%s] --- FAIL: %s\n", r.Series, f.Test)
			for _, l := range f.Lines {
				fmt.Fprintf(w, "[%s]     %s\n", r.Series, l)
			}
		}
		fmt.Fprintln(w)
	}
	return writeTable(w, results)
}

// writeTable prints the table of kernels.
func writeTable(w io.Writer, results []KernelResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tPACKAGE\tRESULT\tBOOT\tTESTS\tDURATION")
	for _, r := range results {
		verdict := "FAIL: " + r.Reason
		if r.Pass {
			verdict = "PASS (" + r.Reason + ")"
		}
		if r.Retried {
			verdict += " [booted twice: first VM died before reporting]"
		}
		pkg := r.Package
		if pkg == "" {
			pkg = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Series, pkg, verdict,
			seconds(r.BootTime), seconds(r.TestTime), seconds(r.Duration))
	}
	return tw.Flush()
}

// seconds formats a duration as seconds with one decimal, or "-" for zero.
func seconds(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}
