package kernel

import (
	"errors"
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
// one program: a fifth of the kernel's limit (1,000,000). Measured: at most
// 36,169 (rf_lsm_path_link) on 6.1, 13,657 (rf_setsockopt) on 6.12 and
// 16,326 (rf_setsockopt) on the host's 6.18. A program far over that is a
// state explosion: before the path walk was a global function whose count
// the verifier cannot follow, the file hooks took 270,000-560,000 each on
// 6.12 (a minute per sensor start in the test VMs) and rf_sys_enter 660,000
// on 6.18, two thirds of the way to being refused.
const complexityBudget = 200_000

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
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("%+v", ve)
		}
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
