package enforce

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

func TestNameChecksAgreeWithTheirPatterns(t *testing.T) {
	// The patterns the name checks stand for; the checks must agree with
	// them on every string.
	namePatterns := []struct {
		name    string
		pattern string
		check   func(string) bool
		alpha   string
	}{
		{"isDNSName", `^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`, isDNSName, "az09-.A_:"},
		{"isRegistryHost", `^[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?(:[0-9]{1,5})?$`, isRegistryHost, "aZ09-.:_/ "},
		{"isInterfaceName", `^[^/\s:]{1,15}$`, isInterfaceName, "e0/: \t\n\v\f\r.é\xff"},
	}

	seeds := []string{"", "a", "-", "a-", "-a", "a.b", "a..b", strings.Repeat("a", 253), strings.Repeat("a", 254),
		"reg:5000", "reg:", ":5000", "reg:123456", "reg:50a", "a:1:2", "eth0", "eth0.100", "a/b", "a b", "a\vb",
		strings.Repeat("é", 15), strings.Repeat("é", 16), "\xff\xfe", strings.Repeat("\xff", 16), ".", ".."}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, np := range namePatterns {
		re := regexp.MustCompile(np.pattern)
		cases := append([]string(nil), seeds...)
		alpha := []rune(np.alpha)
		for range 200000 {
			n := rng.IntN(20)
			if rng.IntN(50) == 0 {
				n = 240 + rng.IntN(20)
			}
			var b strings.Builder
			for range n {
				b.WriteRune(alpha[rng.IntN(len(alpha))])
			}
			cases = append(cases, b.String())
		}
		matched := 0
		for _, s := range cases {
			want := re.MatchString(s)
			if got := np.check(s); got != want {
				t.Errorf("%s(%q) = %v, the pattern %s says %v", np.name, s, got, np.pattern, want)
			}
			if want {
				matched++
			}
		}
		// Both answers must be exercised, or the comparison proves little.
		if matched < 100 || len(cases)-matched < 100 {
			t.Errorf("%s: %d of %d cases matched; the cases do not exercise both answers", np.name, matched, len(cases))
		}
	}
}

func TestYAMLErrorLine(t *testing.T) {
	re := regexp.MustCompile(`line (\d+)`)
	for _, msg := range []string{
		"yaml: line 7: mapping values are not allowed in this context",
		"yaml: unmarshal errors:\n  line 12: cannot unmarshal",
		"yaml: did not find expected key", "line x then line 3", "line ", "baseline 42", "",
	} {
		want := 0
		if m := re.FindStringSubmatch(msg); m != nil {
			for _, c := range m[1] {
				want = want*10 + int(c-'0')
			}
		}
		if got := yamlErrorLine(msg); got != want {
			t.Errorf("yamlErrorLine(%q) = %d, want %d", msg, got, want)
		}
	}
}
