// Package bpf holds the ringfence eBPF programs and their generated Go
// bindings: the kernel ABI of the sensor and nothing else.
//
// The C sources are compiled by bpf2go; the generated files are committed so
// that building the sensor needs no clang. Run `make generate` after changing
// a C file.
package bpf

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 -type event_hdr -type exec_event -type exit_event -type file_event -type bind_event -type syscall_key -type event_kind -type event_source -type file_op -type path_kind -type drop_cause -type violation_event -type rule -type action -type bind_op -type policy_flag -type parent_name -type parent_step -type parent_part -type exe_flag -type udp_flag -type addr_family -type root_key -type root_value -type abi_version -type abi_limit -type pin_meta -type map_name -type layout_hash -type scratch_slot Sensor sensor.c -- -I. -O2 -g -Wall -Werror
