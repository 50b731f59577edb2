package vmtests

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteReport prints one table row per kernel: series, package, PASS or
// FAIL with the reason, boot time, test time and total duration. Under the
// table come the failed tests of each kernel with their last lines, so the
// end of a long run's output says what failed and why.
func WriteReport(w io.Writer, results []KernelResult) error {
	if err := writeTable(w, results); err != nil {
		return err
	}
	for _, r := range results {
		for _, f := range r.Failures {
			fmt.Fprintf(w, "\n[%s] --- FAIL: %s (the console log: %s)\n", r.Series, f.Test, r.Log)
			for _, l := range f.Lines {
				fmt.Fprintf(w, "[%s]     %s\n", r.Series, l)
			}
		}
	}
	return nil
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
