package enforce

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// The policy's names are checked by hand rather than with regular
// expressions: a compiled expression is a package-level value built when
// any ringfence command starts, and the bounded repetition of a DNS name
// alone took most of a millisecond there (all of this package's start-up
// cost: 1.0 ms of the 10 ms every command spent in package initialisation,
// now 0.04 ms). Each function states the pattern it stands for, and
// TestNameChecksAgreeWithTheirPatterns holds it to that pattern.

// isDNSName matches ^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$: a policy's
// name, 1 to 253 lower-case letters, digits, '-' and '.', beginning and
// ending with a letter or digit.
func isDNSName(s string) bool {
	if len(s) == 0 || len(s) > 253 || !lowerAlnum(s[0]) || !lowerAlnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !lowerAlnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// isRegistryHost matches
// ^[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?(:[0-9]{1,5})?$: a host of
// letters, digits, '-' and '.', beginning and ending with a letter or
// digit, and an optional port of 1 to 5 digits.
func isRegistryHost(s string) bool {
	host, port, hasPort := strings.Cut(s, ":")
	if hasPort && (len(port) == 0 || len(port) > 5 || !allDigits(port)) {
		return false
	}
	if len(host) == 0 || !alnum(host[0]) || !alnum(host[len(host)-1]) {
		return false
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; !alnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// isInterfaceName matches ^[^/\s:]{1,15}$: 1 to 15 characters (an invalid
// UTF-8 byte counts as one), none of them '/', ':' or ASCII white space
// (tab, newline, form feed, carriage return, space).
func isInterfaceName(s string) bool {
	if n := utf8.RuneCountInString(s); n < 1 || n > 15 {
		return false
	}
	return !strings.ContainsAny(s, "/:\t\n\f\r ")
}

// yamlErrorLine returns the number after the first "line " of a YAML
// parser's error (`line (\d+)`), or 0.
func yamlErrorLine(msg string) int {
	for rest := msg; ; {
		_, after, ok := strings.Cut(rest, "line ")
		if !ok {
			return 0
		}
		n := 0
		for n < len(after) && after[n] >= '0' && after[n] <= '9' {
			n++
		}
		if n > 0 {
			line, _ := strconv.Atoi(after[:n])
			return line
		}
		rest = after
	}
}

func lowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func alnum(c byte) bool { return lowerAlnum(c) || c >= 'A' && c <= 'Z' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
