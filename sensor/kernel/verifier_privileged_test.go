package kernel

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ringfence/ringfence/test/testenv"
)

// complexityBudget is the most instructions the verifier may process for
// one program: 80% of the kernel's limit (1,000,000), so that a newer
// kernel's more thorough verifier still has room. Measured: rf_sys_enter
// 664,022 on the host's 6.18 (cgroup-only tier); rf_lsm_path_rename
// 558,388 and rf_lsm_file_open 546,667 on 6.12, under 50,000 on 6.1.
const complexityBudget = 800_000

var (
	processedRE = regexp.MustCompile(`processed (\d+) insns`)
	timeRE      = regexp.MustCompile(`verification time (\d+) usec`)
)

// TestPrivilegedVerifierCost loads the tier's programs with the verifier's
// statistics, lists what each cost (instructions processed, time), and
// fails when a program uses more than complexityBudget.
func TestPrivilegedVerifierCost(t *testing.T) {
	testenv.Privileged(t)
	p, err := ProbeTier()
	if err != nil {
		t.Fatal(err)
	}
	spec, _, err := prepare(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats}})
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	type cost struct {
		name      string
		insns, us int
	}
	var costs []cost
	total := 0
	for name, prog := range coll.Programs {
		log := prog.VerifierLog
		m := processedRE.FindStringSubmatch(log)
		if m == nil {
			t.Fatalf("%s: no statistics in the verifier's log: %q", name, log)
		}
		c := cost{name: name}
		c.insns, _ = strconv.Atoi(m[1])
		if m := timeRE.FindStringSubmatch(log); m != nil {
			c.us, _ = strconv.Atoi(m[1])
		}
		costs = append(costs, c)
		total += c.us
	}
	slices.SortFunc(costs, func(a, b cost) int { return b.us - a.us })
	var b strings.Builder
	fmt.Fprintf(&b, "%s tier, %d programs, verified in %.1f s in all:\n", p.Tier, len(costs), float64(total)/1e6)
	for _, c := range costs {
		fmt.Fprintf(&b, "  %-28s %9d insns %10.1f ms\n", c.name, c.insns, float64(c.us)/1e3)
		if c.insns > complexityBudget {
			t.Errorf("%s: the verifier processed %d instructions, over the budget of %d", c.name, c.insns, complexityBudget)
		}
	}
	t.Log(b.String())
}
