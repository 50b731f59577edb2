package decode

import (
	"testing"
	"time"

	"github.com/ringfence/ringfence/bpf"
	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/event"
)

// TestDecodeViolation decodes a violation record of each rule: the kernel's
// verdict comes back typed, the object fills the event.
func TestDecodeViolation(t *testing.T) {
	d := New(time.Unix(0, 0), fakeResolver{})
	base := func(rule enforce.Rule, action enforce.Action, op uint32) bpf.SensorViolationEvent {
		return bpf.SensorViolationEvent{Hdr: hdr(bpf.SensorEventKindKIND_VIOLATION), PolicyId: 4, Rule: uint16(rule),
			Action: uint16(action), SuppressedTotal: 12, Owner: 55, Object: 0xabcd, Op: op}
	}
	ro := base(enforce.RuleReadOnly, enforce.ActionDeny, uint32(bpf.SensorFileOpFILE_OP_RENAME))
	ro.PathKind, ro.Path2Kind = uint16(bpf.SensorPathKindPATH_ABSOLUTE), uint16(bpf.SensorPathKindPATH_ABSOLUTE)
	ro.PathLen = setStr(ro.Path[:], "/etc/a")
	ro.Path2Len = setStr(ro.Path2[:], "/etc/b")

	bind := base(enforce.RuleBindInterfaces, enforce.ActionAudit, uint32(bpf.SensorBindOpBIND_OP_BIND))
	bind.Family, bind.Port, bind.Protocol = 2, 9090, 6
	bind.Addr = [16]uint8{10: 0xff, 11: 0xff, 12: 10, 13: 1, 14: 2, 15: 3}

	byName := base(enforce.RuleBindInterfaces, enforce.ActionDeny, uint32(bpf.SensorBindOpBIND_OP_DEVICE))
	byName.PathLen = setStr(byName.Path[:], "eth1")
	byIndex := base(enforce.RuleBindInterfaces, enforce.ActionDeny, uint32(bpf.SensorBindOpBIND_OP_DEVICE))
	byIndex.Addr[0], byIndex.Addr[1] = 0x2c, 0x01 // 300

	exec := base(enforce.RuleAllowedRegistries, enforce.ActionDeny, 0)
	exec.PathLen = setStr(exec.Path[:], "/usr/bin/curl")

	for _, c := range []struct {
		name   string
		rec    bpf.SensorViolationEvent
		rule   enforce.Rule
		action enforce.Action
		check  func(e event.Event) bool
	}{
		{"read-only rename", ro, enforce.RuleReadOnly, enforce.ActionDeny, func(e event.Event) bool {
			return e.Op == "rename" && e.Path == "/etc/a" && e.Target == "/etc/b" && e.Verdict == event.VerdictDeny
		}},
		{"bind", bind, enforce.RuleBindInterfaces, enforce.ActionAudit, func(e event.Event) bool {
			return e.Op == "bind" && e.Family == "inet" && e.Addr == "10.1.2.3" && e.Port == 9090 && e.Proto == "tcp" && e.Verdict == event.VerdictAudit
		}},
		{"device by name", byName, enforce.RuleBindInterfaces, enforce.ActionDeny, func(e event.Event) bool {
			return e.Op == "bind_device" && e.Device == "eth1" && e.Port == 0 && e.Proto == ""
		}},
		{"device by index", byIndex, enforce.RuleBindInterfaces, enforce.ActionDeny, func(e event.Event) bool {
			return e.Op == "bind_device" && e.Device == "ifindex:300"
		}},
		{"exec", exec, enforce.RuleAllowedRegistries, enforce.ActionDeny, func(e event.Event) bool {
			return e.Binary == "/usr/bin/curl" && e.Path == ""
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, v, err := d.Decode(encode(t, &c.rec))
			if err != nil {
				t.Fatal(err)
			}
			want := Violation{PolicyID: 4, Rule: c.rule, Action: c.action, SuppressedTotal: 12, Owner: 55, Op: uint16(c.rec.Op), Object: 0xabcd}
			if v != want {
				t.Fatalf("verdict %+v, want %+v", v, want)
			}
			if e.Kind != event.KindViolation || e.PID != 10 || !c.check(e) {
				t.Fatalf("event %+v", e)
			}
		})
	}
	// Other records carry no verdict.
	if _, v, err := d.Decode(encode(t, &bpf.SensorExitEvent{Hdr: hdr(bpf.SensorEventKindKIND_EXIT)})); err != nil || v != (Violation{}) {
		t.Fatalf("exit record: verdict %+v, %v", v, err)
	}
}
