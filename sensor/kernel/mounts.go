package kernel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Well-known mount points of the pseudo-filesystems the sensor uses.
const (
	SecurityFSPath = "/sys/kernel/security"
	BPFFSPath      = "/sys/fs/bpf"
	TraceFSPath    = "/sys/kernel/tracing"
)

// Mount is one line of /proc/self/mountinfo, reduced to what the sensor needs.
type Mount struct {
	Point  string
	FSType string
}

// ParseMountInfo reads mountinfo-formatted text. It returns an error naming
// the line when a line is malformed.
func ParseMountInfo(r io.Reader) ([]Mount, error) {
	var mounts []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(fields) {
			return nil, fmt.Errorf("mountinfo line %d: malformed", n)
		}
		mounts = append(mounts, Mount{Point: unescapeMount(fields[4]), FSType: fields[sep+1]})
	}
	return mounts, sc.Err()
}

// unescapeMount undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Mounts returns the mount table of the calling process.
func Mounts() ([]Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseMountInfo(f)
}

// Cgroup2Root returns where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup
// on a v2-only host, often /sys/fs/cgroup/unified on a hybrid one. It returns
// an error when no cgroup2 filesystem is mounted.
func Cgroup2Root(mounts []Mount) (string, error) {
	for _, m := range mounts {
		if m.FSType == "cgroup2" {
			return m.Point, nil
		}
	}
	return "", errors.New("no cgroup2 filesystem is mounted (cgroup v2 is required)")
}

// EnsureMounts mounts securityfs, bpffs and tracefs where they are missing.
// It is idempotent and returns the first mount that failed.
func EnsureMounts() error {
	mounts, err := Mounts()
	if err != nil {
		return fmt.Errorf("read mount table: %w", err)
	}
	for _, want := range []Mount{
		{Point: SecurityFSPath, FSType: "securityfs"},
		{Point: BPFFSPath, FSType: "bpf"},
		{Point: TraceFSPath, FSType: "tracefs"},
	} {
		if mounted(mounts, want) {
			continue
		}
		if err := os.MkdirAll(want.Point, 0o755); err != nil {
			return fmt.Errorf("mount %s: %w", want.FSType, err)
		}
		if err := unix.Mount(want.FSType, want.Point, want.FSType, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s at %s: %w", want.FSType, want.Point, err)
		}
	}
	return nil
}

func mounted(mounts []Mount, want Mount) bool {
	for _, m := range mounts {
		if m.Point == want.Point && m.FSType == want.FSType {
			return true
		}
	}
	return false
}
