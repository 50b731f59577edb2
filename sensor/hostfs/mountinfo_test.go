package hostfs

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name, in, want string
		wantErr        bool
	}{
		{"hybrid host", "22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw\n35 22 0:30 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw\n", "/sys/fs/cgroup/unified", false},
		{"unified host, no optional fields", "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "/sys/fs/cgroup", false},
		{"escaped space", "40 22 0:31 / /mnt/with\\040space rw - cgroup2 none rw\n", "/mnt/with space", false},
		{"no cgroup2", "22 1 0:21 / /sys rw - sysfs sysfs rw\n", "", true},
		{"v1 only", "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n", "", true},
		{"several optional fields", "36 25 0:30 / /sys/fs/cgroup rw,nosuid shared:9 master:2 - cgroup2 cgroup2 rw,nsdelegate\n", "/sys/fs/cgroup", false},
		{"empty", "", "", true},
		{"malformed", "garbage line\n", "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mounts, err := Parse(strings.NewReader(c.in))
			var got string
			if err == nil {
				got, err = Cgroup2(mounts)
			}
			if (err != nil) != c.wantErr || got != c.want {
				t.Fatalf("got %q, %v; want %q, error %v", got, err, c.want, c.wantErr)
			}
		})
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`a\040b`: "a b", `tab\011x`: "tab\tx", `back\134slash`: `back\slash`, `bad\9xy`: `bad\9xy`, `end\04`: `end\04`} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
