// The mount table of the calling process (/proc/self/mountinfo): where the
// pseudo-filesystems the sensor needs are mounted, and above all where the
// cgroup v2 hierarchy is (/sys/fs/cgroup on a unified host, often
// /sys/fs/cgroup/unified on a hybrid one).

package hostfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Mount is one line of the table, reduced to what the sensor needs.
type Mount struct {
	Point  string
	FSType string
	// Dev is the mounted filesystem's device, as the kernel encodes it in
	// a superblock (major << 20 | minor).
	Dev uint32
	// Root is the directory of that filesystem the mount shows: "/" for
	// the whole of it, a subdirectory for a bind mount.
	Root string
}

// Parse reads mountinfo-formatted text. It returns an error naming the line
// when a line is malformed.
func Parse(r io.Reader) ([]Mount, error) {
	var mounts []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		// "36 25 0:30 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw": a
		// variable number of optional fields ends at "-"; the type follows.
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 {
			return nil, fmt.Errorf("mountinfo line %d: malformed", n)
		}
		dev, err := parseDev(f[2])
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", n, err)
		}
		mounts = append(mounts, Mount{Point: unescape(f[4]), FSType: g[0], Dev: dev, Root: unescape(f[3])})
	}
	return mounts, sc.Err()
}

// parseDev reads "major:minor" as the kernel's internal dev_t.
func parseDev(s string) (uint32, error) {
	ma, mi, ok := strings.Cut(s, ":")
	major, err1 := strconv.ParseUint(ma, 10, 12)
	minor, err2 := strconv.ParseUint(mi, 10, 20)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("device %q: not major:minor", s)
	}
	return uint32(major)<<20 | uint32(minor), nil
}

// unescape undoes the octal escapes (\040 for a space) of mount points.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '7' {
			return false
		}
	}
	return s[0] <= '3' // \ooo fits a byte
}

// Read returns the mount table of the calling process.
func Read() ([]Mount, error) { return ReadFile("/proc/self/mountinfo") }

// ReadFile returns the mount table in a mountinfo file: /proc/<pid>/mountinfo
// for the mount namespace of a process.
func ReadFile(name string) ([]Mount, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// Cgroup2 returns where the cgroup v2 hierarchy is mounted in mounts, or an
// error when it is not.
func Cgroup2(mounts []Mount) (string, error) {
	for _, m := range mounts {
		if m.FSType == "cgroup2" {
			return m.Point, nil
		}
	}
	return "", errors.New("no cgroup2 filesystem is mounted (cgroup v2 is required)")
}

// Cgroup2Root returns where the calling process sees the cgroup v2 hierarchy.
func Cgroup2Root() (string, error) {
	mounts, err := Read()
	if err != nil {
		return "", fmt.Errorf("read mount table: %w", err)
	}
	return Cgroup2(mounts)
}
