package testenv

import "testing"

func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{
		"TestPrivilegedEvents":      true,
		"TestPrivilegedEvents/file": true,
		"TestHostLossAccounting":    true,
		"TestEvents":                false,
		"TestPrivileg":              false,
	} {
		if err := checkName(name); (err == nil) != ok {
			t.Errorf("%s: %v, want accepted %v", name, err, ok)
		}
	}
}
