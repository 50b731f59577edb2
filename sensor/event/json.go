package event

import (
	"slices"
	"strconv"
	"unicode/utf8"
)

// AppendLine appends e's JSON line to b (no trailing newline) and returns
// the extended buffer: the same bytes as encoding/json gives for e, with
// HTML characters unescaped (TestAppendLineMatchesEncodingJSON holds it to
// that), written field by field without reflection or allocation, since
// every event the sensor sees is encoded once. On error b is returned as
// it was.
func (e *Event) AppendLine(b []byte) ([]byte, error) {
	out, err := e.Time.AppendText(append(b, `{"time":"`...))
	if err != nil {
		return b, err
	}
	w := lineWriter{b: append(out, '"')}
	w.str("kind", string(e.Kind))
	w.optStr("verdict", string(e.Verdict))
	w.optStr("source", e.Source)
	w.optBool("offline", e.Offline)
	w.optUint("pid", uint64(e.PID))
	w.optUint("tid", uint64(e.TID))
	w.optUint("ppid", uint64(e.PPID))
	w.uint("uid", uint64(e.UID))
	w.uint("gid", uint64(e.GID))
	w.optStr("comm", e.Comm)
	w.optUint("cgroup_id", e.CgroupID)
	w.container("container", e.Container)
	w.optStr("binary", e.Binary)
	w.strs("args", e.Args)
	w.optBool("args_truncated", e.ArgsTruncated)
	w.optStr("hold_outcome", e.HoldOutcome)
	if e.ExitCode != nil {
		w.int("exit_code", int64(*e.ExitCode))
	}
	if e.Signal != 0 {
		w.int("signal", int64(e.Signal))
	}
	w.optBool("core_dumped", e.CoreDumped)
	w.optStr("path", e.Path)
	w.optStr("op", e.Op)
	w.optStr("target", e.Target)
	w.optStr("path_scope", e.PathScope)
	w.optStr("target_scope", e.TargetScope)
	w.optUint("flags", uint64(e.Flags))
	w.optUint("file_mode", uint64(e.FileMode))
	if e.OwnerUID != nil {
		w.uint("owner_uid", uint64(*e.OwnerUID))
	}
	if e.OwnerGID != nil {
		w.uint("owner_gid", uint64(*e.OwnerGID))
	}
	w.optStr("family", e.Family)
	w.optStr("addr", e.Addr)
	// A bind event always has its port, 0 included (the kernel picks one);
	// it comes after the other fields, where bindLine puts it.
	if e.Kind != KindBind {
		w.optUint("port", uint64(e.Port))
	}
	w.optStr("proto", e.Proto)
	w.optStr("device", e.Device)
	w.optStr("severity", e.Severity)
	w.optStr("policy", e.Policy)
	w.optStr("rule", e.Rule)
	w.optStr("mode", e.Mode)
	w.optStr("reason", e.Reason)
	w.optUint("object_cgroup_id", e.ObjectCgroupID)
	w.container("object_container", e.ObjectContainer)
	w.optUint("suppressed", e.Suppressed)
	w.optStr("message", e.Message)
	w.counts("counts", e.Counts)
	if e.Kind == KindBind {
		w.uint("port", uint64(e.Port))
	}
	return append(w.b, '}'), nil
}

// lineWriter appends the fields of one JSON object after its first.
type lineWriter struct{ b []byte }

func (w *lineWriter) key(k string) {
	w.b = append(w.b, ',', '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *lineWriter) str(k, v string) {
	w.key(k)
	w.b = appendQuoted(w.b, v)
}

func (w *lineWriter) optStr(k, v string) {
	if v != "" {
		w.str(k, v)
	}
}

func (w *lineWriter) uint(k string, v uint64) {
	w.key(k)
	w.b = strconv.AppendUint(w.b, v, 10)
}

func (w *lineWriter) optUint(k string, v uint64) {
	if v != 0 {
		w.uint(k, v)
	}
}

func (w *lineWriter) int(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *lineWriter) optBool(k string, v bool) {
	if v {
		w.key(k)
		w.b = append(w.b, "true"...)
	}
}

func (w *lineWriter) strs(k string, v []string) {
	if len(v) == 0 {
		return
	}
	w.key(k)
	for i, s := range v {
		w.b = append(w.b, "[,"[min(i, 1)])
		w.b = appendQuoted(w.b, s)
	}
	w.b = append(w.b, ']')
}

func (w *lineWriter) container(k string, c *Container) {
	if c == nil {
		return
	}
	w.key(k)
	w.b = append(w.b, `{"id":`...)
	w.b = appendQuoted(w.b, c.ID)
	w.optStr("name", c.Name)
	w.optStr("image", c.Image)
	w.optStr("pod", c.Pod)
	w.optStr("namespace", c.PodNamespace)
	w.b = append(w.b, '}')
}

// counts writes a map with its keys in order, as encoding/json does.
func (w *lineWriter) counts(k string, m map[string]uint64) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for name := range m {
		keys = append(keys, name)
	}
	slices.Sort(keys)
	w.key(k)
	for i, name := range keys {
		w.b = append(w.b, "{,"[min(i, 1)])
		w.b = appendQuoted(w.b, name)
		w.b = append(w.b, ':')
		w.b = strconv.AppendUint(w.b, m[name], 10)
	}
	w.b = append(w.b, '}')
}

// plainBytes has a '1' at each byte a JSON string holds as it is:
// printable ASCII but the quote (0x22) and the backslash (0x5c).
const plainBytes = "" +
	"0000000000000000" + // 00-0f
	"0000000000000000" + // 10-1f
	"1101111111111111" + // 20-2f
	"1111111111111111" + // 30-3f
	"1111111111111111" + // 40-4f
	"1111111111110111" + // 50-5f
	"1111111111111111" + // 60-6f
	"1111111111111111" + // 70-7f
	"0000000000000000" + // 80-8f
	"0000000000000000" + // 90-9f
	"0000000000000000" + // a0-af
	"0000000000000000" + // b0-bf
	"0000000000000000" + // c0-cf
	"0000000000000000" + // d0-df
	"0000000000000000" + // e0-ef
	"0000000000000000" // f0-ff

// appendQuoted appends s as a JSON string: quote, backslash and control
// characters escaped (the short forms where JSON has one), invalid UTF-8
// replaced by U+FFFD, and U+2028 and U+2029 escaped, which JavaScript
// does not allow raw in a string; everything else as it is.
func appendQuoted(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	done := 0 // s[:done] is in b
	for i := 0; i < len(s); {
		c := s[i]
		if plainBytes[c] == '1' {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[done:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, `\b`...)
			case '\f':
				b = append(b, `\f`...)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			done = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[done:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[done:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		done = i
	}
	b = append(b, s[done:]...)
	return append(b, '"')
}
