// Package vmtests runs ringfence's privileged Go test binaries inside qemu
// virtual machines that boot Debian's own kernels, so that BPF-LSM programs
// can be loaded and exercised on kernels where BPF LSM is active.
//
// A run has four stages:
//
//   - kernel.go resolves a kernel series such as "6.1" or "6.12" to a Debian
//     package (linux-image-6.1.0-N-amd64, linux-image-6.12.N+deb12-amd64,
//     linux-image-6.18.N+deb13-amd64), downloads it with apt-get (a series the
//     machine's apt lists lack from Debian 13's backports, through an apt
//     state of its own under the cache) and unpacks its /boot into a cache
//     directory;
//     modules.go takes the kernel modules the tests need (Config.Modules,
//     such as overlay) and their dependencies out of the same package,
//     uncompressed, unless the kernel has them built in.
//   - initramfs.go builds one gzip-compressed newc initramfs for all kernels,
//     holding a static busybox, a generated /init script, the test binaries
//     under /tests, any extra files (with the shared libraries they need) and
//     each kernel's modules under /lib/modules/<release>, which /init loads.
//     /init first copies the initramfs into a tmpfs and switches its root
//     there: runc's pivot_root fails with EINVAL on the initramfs itself, the
//     root of the mount tree.
//   - qemu.go boots each kernel with that initramfs under TCG, streams the
//     serial console to a log file and to the caller, and enforces timeouts.
//   - transcript.go and report.go parse the RINGFENCE-* marker lines printed
//     by /init, judge each kernel and print a summary table.
//
// The marker lines printed inside the VM are:
//
//	RINGFENCE-KERNEL <uname -r>
//	RINGFENCE-LSM <contents of /sys/kernel/security/lsm>
//	RINGFENCE-RESULT <test binary basename> <exit code>
//	RINGFENCE-DONE
//
// A kernel passes when bpf is in its active LSM list, every test binary
// reported exit code 0, and RINGFENCE-DONE was seen. A VM that dies before
// reporting any result (an early emulated-boot panic, for instance), one
// that panics midway, and one that times out after reporting a soft lockup or
// an RCU stall (a starved emulator) are booted a second time, once, and the
// retry is announced on the output.
package vmtests
