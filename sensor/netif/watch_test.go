package netif

import (
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

func TestLinkRelevant(t *testing.T) {
	names := []string{"eth0", "lo"}
	indexes := map[int]bool{1: true, 5: true}
	link := func(index int, name string, alt ...string) netlink.LinkUpdate {
		return netlink.LinkUpdate{Link: &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: index, Name: name, AltNames: alt}}}
	}
	cases := []struct {
		name string
		u    netlink.LinkUpdate
		want bool
	}{
		{"tracked index renamed away", link(5, "foo"), true},
		{"tracked name created", link(9, "eth0"), true},
		{"tracked altname added", link(9, "enp0s3", "eth0"), true},
		{"unrelated link", link(9, "veth12"), false},
		{"unparsed link", netlink.LinkUpdate{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := linkRelevant(names, indexes, c.u); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestNextBackoff(t *testing.T) {
	var got []time.Duration
	for d := time.Duration(0); len(got) < 8; {
		d = nextBackoff(d)
		got = append(got, d)
	}
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
