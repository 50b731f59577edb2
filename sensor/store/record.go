package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/ringfence/ringfence/sensor/event"
)

// Record framing: u32 payload length, u32 CRC-32C of the payload, payload.
const frameHeader = 8

// maxPayload bounds one record; anything larger is corruption.
const maxPayload = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTorn marks the end of valid data in a segment.
var errTorn = errors.New("torn or corrupt record")

// meta is the indexed part of a record. It is computed once per event,
// when the event enters the store.
type meta struct {
	Time    int64 // unix nanoseconds
	Kind    uint8
	Verdict uint8
	// Loss marks a loss report: its counts are in the record's binary
	// prefix and the index lists it apart.
	Loss      bool
	Container container
}

// container is what queries select by, besides time, kind and verdict.
type container struct {
	ID, Name, Image, Pod, PodNamespace string
}

// strings returns the container's fields in their stored order.
func (c *container) strings() [5]*string {
	return [5]*string{&c.ID, &c.Name, &c.Image, &c.Pod, &c.PodNamespace}
}

// kinds and verdicts give the one-byte codes stored in records and indexes;
// codes are positions, so new values are only ever appended.
func kinds() [10]event.Kind {
	return [...]event.Kind{"", event.KindExec, event.KindExit, event.KindFile, event.KindBind, event.KindViolation,
		event.KindContainer, event.KindPosture, event.KindSensor, event.KindSyscalls}
}

func verdicts() [4]event.Verdict {
	return [...]event.Verdict{"", event.VerdictAllow, event.VerdictDeny, event.VerdictAudit}
}

func kindCode(k event.Kind) uint8 {
	all := kinds()
	return uint8(max(0, slices.Index(all[:], k)))
}

func verdictCode(v event.Verdict) uint8 {
	all := verdicts()
	return uint8(max(0, slices.Index(all[:], v)))
}

func kindOf(code uint8) event.Kind {
	return kinds()[int(code)%len(kinds())]
}

func verdictOf(code uint8) event.Verdict {
	return verdicts()[int(code)%len(verdicts())]
}

func metaOf(e *event.Event) meta {
	m := meta{Time: e.Time.UnixNano(), Kind: kindCode(e.Kind), Verdict: verdictCode(e.Verdict), Loss: e.IsLossReport()}
	if c := e.Container; c != nil {
		m.Container = container{ID: c.ID, Name: c.Name, Image: c.Image, Pod: c.Pod, PodNamespace: c.PodNamespace}
	}
	return m
}

// lossSection tags the loss counts in a payload. Sections sit between the
// container fields and the JSON, which starts with '{', never with a tag.
const lossSection = 0x01

// appendRecord appends the framed record of one event to buf: the
// indexed fields, the loss counts of a loss report, and the JSON line. On
// error buf is returned unchanged.
func appendRecord(buf []byte, m meta, counts map[string]uint64, js []byte) ([]byte, error) {
	start := len(buf)
	buf = append(buf, make([]byte, frameHeader)...)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(m.Time))
	buf = append(buf, m.Kind, m.Verdict)
	for _, s := range m.Container.strings() {
		buf = appendString(buf, *s)
	}
	if m.Loss {
		buf = appendCounts(buf, counts)
	}
	buf = append(buf, js...)
	payload := buf[start+frameHeader:]
	if len(payload) > maxPayload {
		return buf[:start], fmt.Errorf("event of %d bytes is larger than a record may be (%d)", len(payload), maxPayload)
	}
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, castagnoli))
	return buf, nil
}

// appendCounts appends a loss section: its tag, the number of causes, and
// each cause with its count, in the order of the causes' names.
func appendCounts(buf []byte, counts map[string]uint64) []byte {
	causes := make([]string, 0, len(counts))
	for k := range counts {
		causes = append(causes, k)
	}
	slices.Sort(causes)
	buf = append(buf, lossSection)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(min(len(causes), 0xffff)))
	for _, k := range causes[:min(len(causes), 0xffff)] {
		buf = appendString(buf, k)
		buf = binary.LittleEndian.AppendUint64(buf, counts[k])
	}
	return buf
}

func appendString(buf []byte, s string) []byte {
	if len(s) > 0xffff {
		s = s[:0xffff]
	}
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(s)))
	return append(buf, s...)
}

// readFrame returns the payload of the record at off in data and the offset
// of the next record, or errTorn where the data ends or is damaged.
func readFrame(data []byte, off int64) ([]byte, int64, error) {
	if off < 0 || off+frameHeader > int64(len(data)) {
		return nil, off, errTorn
	}
	n := int64(binary.LittleEndian.Uint32(data[off:]))
	sum := binary.LittleEndian.Uint32(data[off+4:])
	end := off + frameHeader + n
	if n == 0 || n > maxPayload || end > int64(len(data)) {
		return nil, off, errTorn
	}
	payload := data[off+frameHeader : end]
	if crc32.Checksum(payload, castagnoli) != sum {
		return nil, off, errTorn
	}
	return payload, end, nil
}

// record is a parsed payload.
type record struct {
	m meta
	// counts is a loss report's loss section, undecoded.
	counts []byte
	json   []byte
}

// parsePayload splits a payload into its indexed fields, its sections and
// its JSON.
func parsePayload(p []byte) (record, error) {
	var r record
	if len(p) < 10 {
		return r, errTorn
	}
	r.m.Time = int64(binary.LittleEndian.Uint64(p))
	r.m.Kind, r.m.Verdict = p[8], p[9]
	rd := reader{b: p[10:]}
	for _, f := range r.m.Container.strings() {
		*f = rd.str()
	}
	if rd.err {
		return r, errTorn
	}
	var err error
	r.counts, r.json, err = splitSections(rd.b)
	r.m.Loss = r.counts != nil
	return r, err
}

// payloadParts returns a payload's loss section (nil if it has none) and
// its JSON, without decoding its container fields.
func payloadParts(p []byte) (counts, js []byte, err error) {
	if len(p) < 10 {
		return nil, nil, errTorn
	}
	rd := reader{b: p[10:]}
	for range 5 {
		rd.take(int(rd.u16()))
	}
	if rd.err {
		return nil, nil, errTorn
	}
	return splitSections(rd.b)
}

// splitSections splits what follows the container fields into the loss
// section's body, if there is one, and the JSON.
func splitSections(b []byte) (counts, js []byte, err error) {
	if len(b) == 0 || b[0] != lossSection {
		return nil, b, nil
	}
	rd := reader{b: b[1:]}
	for range rd.u16() {
		rd.str()
		rd.u64()
	}
	if rd.err {
		return nil, nil, errTorn
	}
	return b[1 : len(b)-len(rd.b)], rd.b, nil
}

// addCounts adds the counts of a loss section to lost.
func addCounts(lost map[string]uint64, section []byte) {
	rd := reader{b: section}
	n := int(rd.u16())
	for i := 0; i < n && !rd.err; i++ {
		k, v := rd.str(), rd.u64()
		if !rd.err {
			lost[k] += v
		}
	}
}

// reader decodes little-endian fields, remembering if it ran short.
type reader struct {
	b   []byte
	err bool
}

func (r *reader) take(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.err = true
		r.b = nil
		return make([]byte, max(n, 0))
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u64() uint64 { return binary.LittleEndian.Uint64(r.take(8)) }
func (r *reader) u32() uint32 { return binary.LittleEndian.Uint32(r.take(4)) }
func (r *reader) u16() uint16 { return binary.LittleEndian.Uint16(r.take(2)) }
func (r *reader) str() string {
	n := r.u16()
	return string(r.take(int(n)))
}
