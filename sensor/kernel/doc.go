// Package kernel is the sensor's only door to the kernel: it mounts the
// pseudo-filesystems the sensor needs, probes which capability tier the
// running kernel offers, loads and attaches the eBPF programs of that tier,
// and reads and writes their maps.
package kernel
