package vmtests

import (
	"os"
	"strings"
	"testing"
)

// aptSearch6x is trimmed `apt-cache search --names-only ^linux-image-6` output
// from Debian 12 with bookworm-updates and bookworm-security.
const aptSearch6x = `linux-image-6.1.0-47-amd64-dbg - Debug symbols for linux-image-6.1.0-47-amd64
linux-image-6.1.0-47-amd64-unsigned - Linux 6.1 for 64-bit PCs
linux-image-6.1.0-56-cloud-amd64-dbg - Debug symbols for linux-image-6.1.0-56-cloud-amd64
linux-image-6.1.0-57-amd64-unsigned - Linux 6.1 for 64-bit PCs
linux-image-6.1.0-57-rt-amd64 - Linux 6.1 for 64-bit PCs (signed), PREEMPT_RT
linux-image-6.1.0-57-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)
linux-image-6.1.0-47-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.1.0-9-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.1.0-56-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.1.0-50-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.12-amd64 - Linux for 64-bit PCs (meta-package)
linux-image-6.12-amd64-dbg - Debugging symbols for Linux amd64 configuration (meta-package)
linux-image-6.12.9+bpo-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.100+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.117+deb12-amd64-dbg - Debug symbols for linux-image-6.12.117+deb12-amd64
linux-image-6.12.117+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs
linux-image-6.12.117+deb12-cloud-amd64 - Linux 6.12 for x86-64 cloud (signed)
linux-image-6.12.117+deb12-rt-amd64 - Linux 6.12 for 64-bit PCs (signed), PREEMPT_RT
linux-image-6.12.115+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.113+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.117-amd64 - not a Debian naming scheme
`

func TestSelectPackage(t *testing.T) {
	tests := []struct {
		name    string
		series  string
		output  string
		want    string
		wantErr string
	}{
		{name: "6.1 highest ABI numerically", series: "6.1", output: aptSearch6x, want: "linux-image-6.1.0-56-amd64"},
		{name: "6.12 highest sublevel", series: "6.12", output: aptSearch6x, want: "linux-image-6.12.115+deb12-amd64"},
		{
			name:   "6.12 newer signed package",
			series: "6.12",
			output: aptSearch6x + "linux-image-6.12.117+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)\n",
			want:   "linux-image-6.12.117+deb12-amd64",
		},
		{
			name:   "backports naming",
			series: "6.12",
			output: "linux-image-6.12.9+bpo-amd64 - Linux 6.12 (signed)\nlinux-image-6.12.10+bpo-amd64-unsigned - Linux 6.12\n",
			want:   "linux-image-6.12.9+bpo-amd64",
		},
		{
			name:   "deb preferred over bpo at equal ABI",
			series: "6.12",
			output: "linux-image-6.12.9+bpo-amd64 - x\nlinux-image-6.12.9+deb12-amd64 - x\nlinux-image-6.12.9+bpo-amd64 - x\n",
			want:   "linux-image-6.12.9+deb12-amd64",
		},
		{
			name:   "Debian 13 backports naming",
			series: "6.18",
			output: "linux-image-6.18.9+deb13-amd64 - Linux 6.18.9 for 64-bit PCs\nlinux-image-6.18.15+deb13-cloud-amd64 - x\nlinux-image-6.18.15+deb13-amd64 - Linux 6.18.15 for 64-bit PCs\nlinux-image-6.18.12+deb13-rt-amd64 - x\n",
			want:   "linux-image-6.18.15+deb13-amd64",
		},
		{
			name:    "only variants",
			series:  "6.12",
			output:  "linux-image-6.12.117+deb12-amd64-dbg - x\nlinux-image-6.12.117+deb12-rt-amd64 - x\nlinux-image-6.12.117+deb12-cloud-amd64 - x\nlinux-image-6.12.117+deb12-amd64-unsigned - x\n",
			wantErr: "kernel 6.12: no package matches linux-image-6.12.0-*-amd64 or linux-image-6.12.*+debNN-amd64",
		},
		{name: "empty output", series: "6.1", output: "", wantErr: "kernel 6.1: no package matches"},
		{name: "series not in output", series: "6.6", output: aptSearch6x, wantErr: "kernel 6.6: no package matches"},
		{name: "bad series", series: "6.x", output: aptSearch6x, wantErr: `kernel "6.x": want a series`},
		{name: "full version is not a series", series: "6.1.0", output: aptSearch6x, wantErr: "want a series"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SelectPackage(tc.series, tc.output)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("SelectPackage = %q, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("SelectPackage = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestKernelCmdline: 6.12 and later boot with preempt=full, earlier series
// with their default preemption; the console and panic settings are on
// every line.
func TestKernelCmdline(t *testing.T) {
	for series, full := range map[string]bool{"6.1": false, "5.15": false, "6.12": true, "6.18": true, "7.0": true, "bad": false} {
		line := KernelCmdline(series)
		if got := strings.Contains(line, "preempt=full"); got != full {
			t.Errorf("%s: %q, preempt=full %v, want %v", series, line, got, full)
		}
		if !strings.HasPrefix(line, "console=ttyS0 quiet panic=-1") {
			t.Errorf("%s: %q lacks the console and panic settings", series, line)
		}
	}
}

// TestBackportsApt: the backports' apt state lies under the cache, and
// its options replace the machine's sources, lists and package cache, so
// that apt's own configuration is never changed.
func TestBackportsApt(t *testing.T) {
	cache := t.TempDir()
	f := &kernelFetcher{cacheDir: cache, logf: t.Logf}
	opts, err := f.backportsApt()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for i := 0; i+1 < len(opts); i += 2 {
		if opts[i] != "-o" {
			t.Fatalf("options %q: want -o pairs", opts)
		}
		k, v, _ := strings.Cut(opts[i+1], "=")
		got[k] = v
	}
	for _, k := range []string{"Dir::Etc::SourceList", "Dir::Etc::SourceParts", "Dir::State::Lists", "Dir::Cache"} {
		if !strings.HasPrefix(got[k], cache+"/") {
			t.Errorf("%s = %q, want a path under the cache %s", k, got[k], cache)
		}
	}
	b, err := os.ReadFile(got["Dir::Etc::SourceList"])
	if err != nil || strings.TrimSpace(string(b)) != backportsSource {
		t.Fatalf("sources list: %q, %v; want %q", b, err, backportsSource)
	}
	for _, d := range []string{got["Dir::State::Lists"] + "/partial", got["Dir::Cache"] + "/archives/partial", got["Dir::Etc::SourceParts"]} {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			t.Errorf("%s: %v; apt needs it to exist", d, err)
		}
	}
}
