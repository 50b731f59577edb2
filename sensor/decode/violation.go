package decode

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/ringfence/ringfence/bpf"
	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/event"
)

// Violation is the kernel's side of a violation record, typed: the policy
// (by id: naming it is the policy engine's business), the rule and what was
// done, and the rate limiter's count and key behind the report. The
// violation stage turns it into the event's policy, rule, mode and reason.
type Violation struct {
	PolicyID uint32
	Rule     enforce.Rule
	Action   enforce.Action
	// SuppressedTotal counts the identical violations the kernel did not
	// report since the sensor started; Owner, Op and Object complete their
	// key.
	SuppressedTotal uint64
	// Owner is the container whose rules were broken: the acting
	// process's, or, for the read-only rule, the one whose root filesystem
	// was written, whoever wrote.
	Owner  uint64
	Op     uint16
	Object uint32
}

// violationFields fills a violation's object (path, address, interface or
// executed file) and returns the kernel's verdict.
func (d *Decoder) violationFields(e *event.Event, r *bpf.SensorViolationEvent) Violation {
	e.Kind = event.KindViolation
	rule := enforce.Rule(r.Rule)
	v := Violation{PolicyID: r.PolicyId, Rule: rule, Action: enforce.Action(r.Action),
		SuppressedTotal: r.SuppressedTotal, Owner: r.Owner, Op: uint16(r.Op), Object: r.Object}
	e.Verdict = event.Verdict(v.Action.String())
	switch rule {
	case enforce.RuleReadOnly:
		e.Op = OpName(bpf.SensorFileOp(r.Op))
		e.Path, e.PathScope = d.path(e.PID, bpf.SensorPathKind(r.PathKind), 0, cString(r.Path[:], int(r.PathLen)))
		if r.Path2Kind != uint16(bpf.SensorPathKindPATH_NONE) {
			t := cString(r.Path2[:], int(r.Path2Len))
			if r.Op != uint32(bpf.SensorFileOpFILE_OP_SYMLINK) {
				t, e.TargetScope = d.path(e.PID, bpf.SensorPathKind(r.Path2Kind), 0, t)
			}
			e.Target = t
		}
	case enforce.RuleBindInterfaces:
		e.Op = bindOpName(bpf.SensorBindOp(r.Op))
		e.Port = r.Port
		e.Proto = protoName(r.Protocol, 0)
		switch r.Family {
		case 2:
			e.Family = "inet"
			e.Addr = netip.AddrFrom16(r.Addr).Unmap().String()
		case 10:
			e.Family = "inet6"
			e.Addr = netip.AddrFrom16(r.Addr).String()
		}
		switch bpf.SensorBindOp(r.Op) {
		case bpf.SensorBindOpBIND_OP_DEVICE:
			e.Port, e.Proto = 0, ""
			idx := uint32(r.Addr[0]) | uint32(r.Addr[1])<<8 | uint32(r.Addr[2])<<16 | uint32(r.Addr[3])<<24
			switch {
			case r.PathLen > 0:
				e.Device = cString(r.Path[:], int(r.PathLen))
			case idx != 0:
				e.Device = "ifindex:" + strconv.FormatUint(uint64(idx), 10)
			default: // an option the hook could not read (32-bit, or too long)
				e.Device = "unread"
			}
		case bpf.SensorBindOpBIND_OP_SOCKET:
			e.Addr, e.Port = "", 0
			if r.Family == 17 {
				e.Family, e.Proto = "packet", ""
			}
		}
	default: // exec rules: the object is the executed file
		e.Binary = cString(r.Path[:], int(r.PathLen))
	}
	return v
}

func bindOpName(op bpf.SensorBindOp) string {
	switch op {
	case bpf.SensorBindOpBIND_OP_BIND:
		return "bind"
	case bpf.SensorBindOpBIND_OP_LISTEN:
		return "listen"
	case bpf.SensorBindOpBIND_OP_DEVICE:
		return "bind_device"
	case bpf.SensorBindOpBIND_OP_CONNECTION:
		return "connection"
	case bpf.SensorBindOpBIND_OP_SOCKET:
		return "socket"
	}
	return fmt.Sprintf("op_%d", op)
}
