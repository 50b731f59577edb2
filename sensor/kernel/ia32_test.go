package kernel

import "testing"

// TestIA32Closed checks how a child's end is read, with real children:
// one killed by a general-protection fault (hlt in user mode, the fault a
// refused int 0x80 raises), one that exits 1, one that exits 0.
func TestIA32Closed(t *testing.T) {
	refused, allowed := IA32{}, IA32{Allowed: true}
	hlt := []byte{0xf4}
	exit := func(code byte) []byte {
		return []byte{0xbf, code, 0, 0, 0, 0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05} // mov edi, code; mov eax, 60; syscall
	}
	for _, c := range []struct {
		name          string
		code          []byte
		closedRefused bool
	}{
		{"fault", hlt, true},
		{"exit 1", exit(1), false},
		{"exit 0", exit(0), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := runMachineCode(c.code)
			if got := refused.Closed(err); got != c.closedRefused {
				t.Errorf("refused world: Closed(%v) = %v, want %v", err, got, c.closedRefused)
			}
			if allowed.Closed(err) {
				t.Errorf("allowed world: Closed(%v) = true: nothing is closed there", err)
			}
		})
	}
}
