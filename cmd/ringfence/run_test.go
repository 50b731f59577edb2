package main

import (
	"io"
	"strings"
	"testing"
)

func TestRunFlagsRefused(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"store size below two segments", []string{"--store-max-bytes", "1048576"}, "--store-max-bytes: 1048576 is below 4194304"},
		{"negative store size", []string{"--store-max-bytes", "-5"}, "--store-max-bytes: -5 is negative"},
		{"negative store age", []string{"--store-max-age", "-1h"}, "--store-max-age: -1h0m0s is negative"},
		{"ring size", []string{"--ring-mib", "3"}, "--ring-mib: 3 is not a power of two"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseRunFlags(c.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error saying %q", err, c.want)
			}
		})
	}
	for _, ok := range [][]string{{"--store-max-bytes", "4194304"}, {"--store-max-bytes", "0"}, {"--store-max-age", "0"}} {
		f, err := parseRunFlags(ok, io.Discard)
		if err != nil {
			t.Errorf("%v refused: %v", ok, err)
		} else if f.storeDir != defaultStore {
			t.Errorf("%v: store %q", ok, f.storeDir)
		}
	}
}
