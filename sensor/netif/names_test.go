package netif

import (
	"slices"
	"testing"
)

func TestCleanNames(t *testing.T) {
	cases := []struct {
		name    string
		in, out []string
		wantErr bool
	}{
		{"sorted and deduplicated", []string{"lo", "eth0", "lo"}, []string{"eth0", "lo"}, false},
		{"none", nil, []string{}, false},
		{"NUL", []string{"eth\x000"}, nil, true},
		{"long altname", []string{"a-very-long-alternative-interface-name"}, []string{"a-very-long-alternative-interface-name"}, false},
		{"too long", []string{string(slices.Repeat([]byte("a"), 128))}, nil, true},
		{"empty", []string{"eth0", ""}, nil, true},
		{"slash", []string{"a/b"}, nil, true},
		{"colon", []string{"eth0:1"}, nil, true},
		{"space", []string{"eth 0"}, nil, true},
		{"dot", []string{"."}, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := cleanNames(c.in)
			if (err != nil) != c.wantErr || (!c.wantErr && !slices.Equal(got, c.out)) {
				t.Fatalf("got %q, %v; want %q, error %v", got, err, c.out, c.wantErr)
			}
		})
	}
}

func TestNamesOfIsTheUnionOfHolders(t *testing.T) {
	tr := New(func(Snapshot) {}, nil)
	tr.holders["a"] = registration{key: 1, names: []string{"eth0", "lo"}}
	tr.holders["b"] = registration{key: 1, names: []string{"eth1", "eth0"}}
	tr.holders["c"] = registration{key: 2, names: []string{"wg0"}}
	tr.holders["d"] = registration{key: 3}
	for key, want := range map[NSKey][]string{1: {"eth0", "eth1", "lo"}, 2: {"wg0"}, 3: {}, 4: nil} {
		got := tr.namesOf(key)
		if !slices.Equal(got, want) || (got == nil) != (want == nil) {
			t.Errorf("namesOf(%d) = %#v, want %#v", key, got, want)
		}
	}
}
