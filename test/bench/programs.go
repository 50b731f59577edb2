package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// floorName names the no-op program the bench attaches to sys_enter next
// to the sensor's: what any program on that hook costs at the least.
const floorName = "rfbench_noop"

// floorSlack is how far above the no-op a per-syscall program may cost, for
// a process the sensor does not watch, and still count as at the floor: one
// map lookup and a branch.
const floorSlack = 10.0 // ns per run

// progCost is one program's runs and run time during one workload.
type progCost struct {
	runs uint64
	ns   uint64
}

func (c progCost) perRun() float64 {
	if c.runs == 0 {
		return 0
	}
	return float64(c.ns) / float64(c.runs)
}

// progSnapshot is every observed program's counters at one moment, by id.
type progSnapshot map[ebpf.ProgramID]struct {
	name string
	progCost
}

// measurePrograms runs the open-write+close workload once in each placement
// with one sensor watching in and the kernel's run-time statistics on, and
// returns each of the sensor's programs' cost per run in each placement, and
// that of a no-op program on sys_enter attached alongside.
func measurePrograms(ctx context.Context, cfg config, self, tmp, target string, in *cgroup, placements []placement) (string, error) {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return "", fmt.Errorf("enable BPF run-time statistics: %w", err)
	}
	defer stats.Close()
	floor, err := attachFloor()
	if err != nil {
		return "", err
	}
	defer floor.Close()

	before, err := snapshotPrograms(nil)
	if err != nil {
		return "", err
	}
	s, err := startSensor(ctx, cfg.ringfence, in.path, filepath.Join(tmp, "progs"), filepath.Join(tmp, "progs.jsonl"))
	if err != nil {
		return "", err
	}
	// Only programs that appeared with this sensor (and the floor) count.
	ours := func(id ebpf.ProgramID, name string) bool {
		_, old := before[id]
		return name == floorName || (!old && strings.HasPrefix(name, "rf_"))
	}
	w, _ := findWorkload("open-write+close")
	costs := map[string]map[string]progCost{} // program -> placement -> cost
	for _, p := range placements {
		a, err := snapshotPrograms(ours)
		if err == nil {
			_, err = measure(ctx, self, w, cfg.openIters, target, p.cg)
		}
		var b progSnapshot
		if err == nil {
			b, err = snapshotPrograms(ours)
		}
		if err != nil {
			s.stop()
			return "", err
		}
		for id, after := range b {
			d := progCost{runs: after.runs - a[id].runs, ns: after.ns - a[id].ns}
			if costs[after.name] == nil {
				costs[after.name] = map[string]progCost{}
			}
			c := costs[after.name][p.name]
			costs[after.name][p.name] = progCost{runs: c.runs + d.runs, ns: c.ns + d.ns}
		}
	}
	if err := s.stop(); err != nil {
		return "", err
	}
	if costs[floorName] == nil {
		return "", errors.New("the no-op program on sys_enter was not seen running")
	}
	if _, ok := costs["rf_sys_enter"]; !ok {
		return "", errors.New("the sensor's rf_sys_enter was not seen running: did it attach?")
	}
	return formatProgramCosts(costs, placements), nil
}

// formatProgramCosts renders a table of every program that ran: ns per run
// in each placement, and, for the per-syscall program, the goal (within
// floorSlack of the no-op for unwatched processes) and whether it is met.
func formatProgramCosts(costs map[string]map[string]progCost, placements []placement) string {
	floor := costs[floorName][placements[0].name].perRun()
	header := []string{"program", "placement"}
	header = append(header, "runs", "ns/run", "goal", "met")
	var names []string
	for n := range costs {
		names = append(names, n)
	}
	sort.Strings(names)
	var rows [][]string
	for _, n := range names {
		for _, p := range placements {
			c := costs[n][p.name]
			if c.runs == 0 {
				continue
			}
			goal, met := "", ""
			if n == "rf_sys_enter" && p.name == "outside" {
				goal = fmt.Sprintf("≤ %.1f", floor+floorSlack)
				met = metWord(c.perRun() <= floor+floorSlack)
			}
			rows = append(rows, []string{n, p.name, fmt.Sprint(c.runs), fmt.Sprintf("%.1f", c.perRun()), goal, met})
		}
	}
	var b strings.Builder
	b.WriteString(formatTable(header, rows))
	fmt.Fprintf(&b, "\nns/run from the kernel's run-time statistics during one open-write+close run per placement;\n")
	fmt.Fprintf(&b, "%s is a no-op on sys_enter, the floor of any program there; goal: a process the sensor\n", floorName)
	fmt.Fprintf(&b, "does not watch pays at most %.0f ns more than the floor per syscall\n", floorSlack)
	return b.String()
}

func metWord(ok bool) string {
	if ok {
		return "MET"
	}
	return "NOT MET"
}

// attachFloor loads and attaches a program that returns at once on the
// sys_enter tracepoint, the hook of the sensor's per-syscall program.
func attachFloor() (link.Link, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         floorName,
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceRawTp,
		AttachTo:     "sys_enter",
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		return nil, fmt.Errorf("load the no-op sys_enter program: %w", err)
	}
	defer prog.Close() // the link keeps it
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		return nil, fmt.Errorf("attach the no-op sys_enter program: %w", err)
	}
	return l, nil
}

// snapshotPrograms reads the run counters of every loaded program keep
// accepts (every one, for a nil keep).
func snapshotPrograms(keep func(ebpf.ProgramID, string) bool) (progSnapshot, error) {
	snap := progSnapshot{}
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return snap, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list programs: %w", err)
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // gone meanwhile
		}
		info, err := p.Info()
		var st *ebpf.ProgramStats
		if err == nil {
			st, err = p.Stats()
		}
		p.Close()
		if err != nil || (keep != nil && !keep(id, info.Name)) {
			continue
		}
		snap[id] = struct {
			name string
			progCost
		}{info.Name, progCost{runs: st.RunCount, ns: uint64(st.Runtime)}}
	}
}
