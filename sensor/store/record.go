package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/ringfence/ringfence/sensor/event"
)

// Record framing: u32 payload length, u32 CRC-32C of the payload, payload.
const frameHeader = 8

// maxPayload bounds one record; anything larger is corruption.
const maxPayload = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTorn marks the end of valid data in a segment.
var errTorn = errors.New("torn or corrupt record")

// meta is the indexed part of a record.
type meta struct {
	Time      int64 // unix nanoseconds
	Kind      uint8
	Verdict   uint8
	Container container
}

// container is what queries select by, besides time, kind and verdict.
type container struct {
	ID, Name, Image, Pod, Namespace string
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
	for i, v := range kinds() {
		if v == k {
			return uint8(i)
		}
	}
	return 0
}

func verdictCode(v event.Verdict) uint8 {
	for i, x := range verdicts() {
		if x == v {
			return uint8(i)
		}
	}
	return 0
}

func metaOf(e *event.Event) meta {
	m := meta{Time: e.Time.UnixNano(), Kind: kindCode(e.Kind), Verdict: verdictCode(e.Verdict)}
	if c := e.Container; c != nil {
		m.Container = container{ID: c.ID, Name: c.Name, Image: c.Image, Pod: c.Pod, Namespace: c.PodNamespace}
	}
	return m
}

// encoded is an event ready to be stored: its indexed fields and its JSON.
type encoded struct {
	m    meta
	line []byte
}

func encode(e *event.Event) (encoded, error) {
	line, err := e.MarshalLine()
	if err != nil {
		return encoded{}, fmt.Errorf("encode event: %w", err)
	}
	return encoded{m: metaOf(e), line: line}, nil
}

// appendRecord appends the framed record of one event to buf.
func appendRecord(buf []byte, r encoded) ([]byte, error) {
	js, m := r.line, r.m
	start := len(buf)
	buf = append(buf, make([]byte, frameHeader)...)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(m.Time))
	buf = append(buf, m.Kind, m.Verdict)
	for _, s := range []string{m.Container.ID, m.Container.Name, m.Container.Image, m.Container.Pod, m.Container.Namespace} {
		buf = appendString(buf, s)
	}
	buf = append(buf, js...)
	payload := buf[start+frameHeader:]
	if len(payload) > maxPayload {
		return buf[:start], fmt.Errorf("event of %d bytes is larger than a record may be", len(payload))
	}
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, castagnoli))
	return buf, nil
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
	if off+frameHeader > int64(len(data)) {
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

// parsePayload splits a payload into its indexed fields and its JSON.
func parsePayload(p []byte) (meta, []byte, error) {
	var m meta
	if len(p) < 10 {
		return m, nil, errTorn
	}
	m.Time = int64(binary.LittleEndian.Uint64(p))
	m.Kind, m.Verdict = p[8], p[9]
	p = p[10:]
	fields := []*string{&m.Container.ID, &m.Container.Name, &m.Container.Image, &m.Container.Pod, &m.Container.Namespace}
	for _, f := range fields {
		if len(p) < 2 {
			return m, nil, errTorn
		}
		n := int(binary.LittleEndian.Uint16(p))
		if len(p) < 2+n {
			return m, nil, errTorn
		}
		*f = string(p[2 : 2+n])
		p = p[2+n:]
	}
	return m, p, nil
}
