// Package sensor wires the sensor's stages together and holds no logic of
// its own. One event goes, one file per stage:
//
//	kernel/ring.go      the ring reader hands each record over
//	pipeline.go         dispatches it by kind: decode/ for every record, and
//	                    violation/ for violation records; hold/ parks the
//	                    events of a container not yet named; then enriches
//	                    it with its container (container/identity.go),
//	                    counts it, and hands it to every sink (store/,
//	                    sink/, the API's hub)
//	poll.go             reads the kernel's counters on a timer: losses,
//	                    syscall counts, suppressed violations, lost holds
//	lifecycle.go        containers the runtime (container/) names: hold/
//	                    puts them under their policies (enforce/)
//	snapshot.go         the status of every stage, for `ringfence status`
//	                    and the metrics
package sensor
