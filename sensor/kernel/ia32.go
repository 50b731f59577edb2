package kernel

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// IA32 is what a machine does with a 32-bit syscall. Machines of one kind
// differ: some hypervisors refuse the ia32 entry although the kernel has
// CONFIG_IA32_EMULATION, and the process gets a general-protection fault.
// Where 32-bit syscalls run, routes the kernel hooks only for 64-bit ones
// (cgroup setsockopt programs) are open.
type IA32 struct {
	// Allowed is true when an ia32 syscall runs and returns.
	Allowed bool `json:"allowed"`
	// How says what the probe saw.
	How string `json:"how"`
}

// Closed reports whether err, the outcome of a child process that made an
// ia32 syscall, is this world's refusal: the child was killed by SIGSEGV.
func (w IA32) Closed(err error) bool {
	var exit *exec.ExitError
	if w.Allowed || !errors.As(err, &exit) {
		return false
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGSEGV
}

// ProbeIA32 makes one ia32 syscall (getpid, number 20) in a child process
// and says which world this is: allowed (the call returned a pid) or
// refused (the child died of SIGSEGV). Any other outcome is an error: a
// world nothing here was written for.
func ProbeIA32() (IA32, error) {
	out, err := runMachineCode(getpidCode)
	if err == nil {
		return IA32{Allowed: true, How: "a 32-bit syscall (int 0x80) runs: the ia32 entry is open"}, nil
	}
	w := IA32{How: "a 32-bit syscall (int 0x80) is refused: the process is killed by SIGSEGV (general-protection fault)"}
	if w.Closed(err) {
		return w, nil
	}
	return IA32{}, fmt.Errorf("ia32 probe: neither allowed nor refused by a fault: %v %q", err, out)
}

// getpidCode makes the ia32 getpid syscall through int 0x80 and exits 0
// when it returned a pid, 1 when it returned an error.
var getpidCode = []byte{
	0xb8, 0x14, 0x00, 0x00, 0x00, // mov eax, 20 (ia32 getpid)
	0xcd, 0x80, // int 0x80
	0x31, 0xff, // xor edi, edi
	0x85, 0xc0, // test eax, eax
	0x7f, 0x05, // jg +5: a pid, exit 0
	0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi, 1
	0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60 (x86-64 exit)
	0x0f, 0x05, // syscall
}

// runMachineCode runs code as a static x86-64 executable in a child
// process, from a memfd (no file is written), and returns its output and
// how it ended.
func runMachineCode(code []byte) ([]byte, error) {
	fd, err := unix.MemfdCreate("ringfence-ia32-probe", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("ia32 probe: memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "ringfence-ia32-probe")
	defer f.Close()
	if _, err := f.Write(elfExecutable(code)); err != nil {
		return nil, fmt.Errorf("ia32 probe: %w", err)
	}
	// The child gets the program as descriptor 3 and executes it from there.
	cmd := exec.Command("/proc/self/fd/3")
	cmd.ExtraFiles = []*os.File{f}
	return cmd.CombinedOutput()
}

// elfExecutable wraps code in a static x86-64 ELF executable of one
// loadable segment, its entry point the first byte of code.
func elfExecutable(code []byte) []byte {
	const base = 0x400000
	hdrLen := binary.Size(elf.Header64{}) + binary.Size(elf.Prog64{})
	size := uint64(hdrLen + len(code))
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Entry: base + uint64(hdrLen), Phoff: uint64(binary.Size(elf.Header64{})),
		Ehsize: uint16(binary.Size(elf.Header64{})), Phentsize: uint16(binary.Size(elf.Prog64{})), Phnum: 1,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	p := elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Vaddr: base, Paddr: base,
		Filesz: size, Memsz: size, Align: 0x1000}
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, &h)
	binary.Write(&b, binary.LittleEndian, &p)
	b.Write(code)
	return b.Bytes()
}
