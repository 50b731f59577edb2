package bpf_test

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/bpf"
	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/kernel"
)

// The kernel ABI is abi.h; the Go code mirrors some of it by hand. These
// tests pin every such mirror to the types bpf2go generated from the C, so
// that a change on one side fails here rather than in the kernel.

func TestRulesAndActions(t *testing.T) {
	for _, c := range []struct {
		name    string
		goSide  uint32
		cHeader uint32
	}{
		{"RULE_READ_ONLY", uint32(enforce.RuleReadOnly), uint32(bpf.SensorRuleRULE_READ_ONLY)},
		{"RULE_BIND_INTERFACES", uint32(enforce.RuleBindInterfaces), uint32(bpf.SensorRuleRULE_BIND_INTERFACES)},
		{"RULE_ALLOWED_REGISTRIES", uint32(enforce.RuleAllowedRegistries), uint32(bpf.SensorRuleRULE_ALLOWED_REGISTRIES)},
		{"RULE_DENY_PRIVILEGED", uint32(enforce.RuleDenyPrivileged), uint32(bpf.SensorRuleRULE_DENY_PRIVILEGED)},
		{"ACTION_NONE", uint32(enforce.ActionNone), uint32(bpf.SensorActionACTION_NONE)},
		{"ACTION_AUDIT", uint32(enforce.ActionAudit), uint32(bpf.SensorActionACTION_AUDIT)},
		{"ACTION_DENY", uint32(enforce.ActionDeny), uint32(bpf.SensorActionACTION_DENY)},
	} {
		if c.goSide != c.cHeader {
			t.Errorf("%s: Go %d, abi.h %d", c.name, c.goSide, c.cHeader)
		}
	}
}

func TestLimits(t *testing.T) {
	for _, c := range []struct {
		name         string
		goSide, want int
	}{
		{"enforce.MaxPoliciesPerContainer = MAX_MEMBER_POLICIES", enforce.MaxPoliciesPerContainer, int(bpf.SensorAbiLimitMAX_MEMBER_POLICIES)},
		{"enforce.MaxPortRanges = MAX_PORT_RANGES", enforce.MaxPortRanges, int(bpf.SensorAbiLimitMAX_PORT_RANGES)},
		{"enforce.MaxInterfaces = MAX_IFACES", enforce.MaxInterfaces, int(bpf.SensorAbiLimitMAX_IFACES)},
		{"kernel.MaxParentParts = MAX_PARENT_PARTS", kernel.MaxParentParts, int(bpf.SensorAbiLimitMAX_PARENT_PARTS)},
		{"kernel.MaxParentName = PARENT_NAME_LEN - 1 (its NUL)", kernel.MaxParentName, int(bpf.SensorAbiLimitPARENT_NAME_LEN) - 1},
		{"IFNAMSIZ", unix.IFNAMSIZ, int(bpf.SensorAbiLimitIFNAMSIZ)},
	} {
		if c.goSide != c.want {
			t.Errorf("%s: Go %d, abi.h %d", c.name, c.goSide, c.want)
		}
	}
	// An allowWrites entry is matched with the kernel's flag byte and NUL
	// after it, in a key of ALLOW_KEY_LEN bytes.
	if enforce.MaxAllowWriteLen >= int(bpf.SensorAbiLimitALLOW_KEY_LEN) {
		t.Errorf("enforce.MaxAllowWriteLen %d does not fit ALLOW_KEY_LEN %d", enforce.MaxAllowWriteLen, bpf.SensorAbiLimitALLOW_KEY_LEN)
	}
	// The record arrays are as long as abi.h says.
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"event_hdr.comm", len(bpf.SensorEventHdr{}.Comm), int(bpf.SensorAbiLimitCOMM_LEN)},
		{"file_event.path", len(bpf.SensorFileEvent{}.Path), int(bpf.SensorAbiLimitPATH_LEN)},
		{"exec_event.filename", len(bpf.SensorExecEvent{}.Filename), int(bpf.SensorAbiLimitFILENAME_LEN)},
		{"exec_event.args", len(bpf.SensorExecEvent{}.Args), int(bpf.SensorAbiLimitARGS_LEN)},
		{"parent_name.name", len(bpf.SensorParentName{}.Name), int(bpf.SensorAbiLimitPARENT_NAME_LEN)},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d bytes, abi.h %d", c.name, c.got, c.want)
		}
	}
}

func TestAddressFamilies(t *testing.T) {
	if bpf.SensorAddrFamilyFAMILY_INET != unix.AF_INET || bpf.SensorAddrFamilyFAMILY_INET6 != unix.AF_INET6 || bpf.SensorAddrFamilyFAMILY_PACKET != unix.AF_PACKET {
		t.Fatalf("abi.h families %d/%d/%d, the kernel's %d/%d/%d", bpf.SensorAddrFamilyFAMILY_INET, bpf.SensorAddrFamilyFAMILY_INET6,
			bpf.SensorAddrFamilyFAMILY_PACKET, unix.AF_INET, unix.AF_INET6, unix.AF_PACKET)
	}
}

// records are the types whose layout is shared with the kernel: the ring's
// records and the pinned maps' keys and values.
func records() []any {
	return []any{
		bpf.SensorEventHdr{}, bpf.SensorExecEvent{}, bpf.SensorExitEvent{}, bpf.SensorFileEvent{}, bpf.SensorBindEvent{},
		bpf.SensorViolationEvent{}, bpf.SensorSyscallKey{}, bpf.SensorMember{}, bpf.SensorPolicy{}, bpf.SensorAllowKey{},
		bpf.SensorAddrKey{}, bpf.SensorIfindexKey{}, bpf.SensorRootKey{}, bpf.SensorRootValue{}, bpf.SensorParentName{},
		bpf.SensorParentStep{}, bpf.SensorParentPart{}, bpf.SensorViolationKey{}, bpf.SensorViolationState{}, bpf.SensorPinMeta{},
		bpf.SensorMapName{}, bpf.SensorLayoutHash{}, bpf.SensorFileId{},
	}
}

// TestRecordsHaveNoHiddenPadding: the decoder reads records with
// encoding/binary, which skips nothing; every byte of a record is a field.
func TestRecordsHaveNoHiddenPadding(t *testing.T) {
	for _, r := range records() {
		if b, m := binary.Size(r), int(reflect.TypeOf(r).Size()); b != m {
			t.Errorf("%T: %d bytes of fields, %d in memory", r, b, m)
		}
	}
}

// abiLayouts pins, per ABI_VERSION, the fingerprint of every shared layout:
// a change of a record or a pinned map's key or value must come with a new
// ABI_VERSION (abi.h), which makes a daemon of one refuse the pins of the
// other rather than misread them.
var abiLayouts = map[bpf.SensorAbiVersion]string{
	1: "f84aa8bc6c32422b",
}

func TestLayoutsMatchTheABIVersion(t *testing.T) {
	h := sha256.New()
	for _, r := range records() {
		fmt.Fprint(h, layout(reflect.TypeOf(r)))
	}
	got := fmt.Sprintf("%x", h.Sum(nil)[:8])
	want, ok := abiLayouts[bpf.SensorAbiVersionABI_VERSION]
	if !ok || got != want {
		t.Fatalf("the shared layouts (fingerprint %s) are not those of ABI_VERSION %d (%q): if abi.h changed a record or a pinned map's key or value, raise ABI_VERSION and pin the new fingerprint here", got, bpf.SensorAbiVersionABI_VERSION, want)
	}
}

// layout describes a type's fields, offsets and sizes, recursively.
func layout(t reflect.Type) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s(%d){", t.Name(), t.Size())
	if t.Kind() == reflect.Struct {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Name == "_" {
				continue
			}
			fmt.Fprintf(&b, "%s@%d:", f.Name, f.Offset)
			switch f.Type.Kind() {
			case reflect.Struct:
				b.WriteString(layout(f.Type))
			case reflect.Array:
				fmt.Fprintf(&b, "[%d]%s", f.Type.Len(), layout(f.Type.Elem()))
			default:
				fmt.Fprintf(&b, "%s%d", f.Type.Kind(), f.Type.Size())
			}
			b.WriteString(";")
		}
	}
	b.WriteString("}")
	return b.String()
}
