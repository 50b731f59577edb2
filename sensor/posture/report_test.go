package posture

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/sensor/event"
)

func sampleReports() []Report {
	return []Report{
		{Container: event.Container{ID: "abc123", Name: "web", Image: "registry.internal/web:1"}, Findings: []Finding{
			{Check: "4.1", Title: "Ensure that a user for the container has been created", Severity: SeverityMedium, Detail: "process runs as uid 0 (root)"},
			{Check: "5.6", Title: "Ensure sensitive host system directories are not mounted on containers", Severity: SeverityHigh, Detail: "/etc\t<&> at /host-etc (ro)"},
		}},
		{Container: event.Container{ID: "def456"}, Findings: []Finding{}},
		{Container: event.Container{ID: "ghi789", Name: "db"}, Findings: Evaluate(nil)},
	}
}

func TestWriteTable(t *testing.T) {
	var b strings.Builder
	if err := WriteTable(&b, sampleReports()); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"CONTAINER  CHECK  SEVERITY  TITLE                                                                   DETAIL",
		"web        4.1    medium    Ensure that a user for the container has been created                   process runs as uid 0 (root)",
		"web        5.6    high      Ensure sensitive host system directories are not mounted on containers  /etc <&> at /host-etc (ro)",
		"def456     -      -         passes all 13 checks                                                    -",
		"db         spec   unknown   Container OCI runtime spec is known                                     the runtime did not provide the container's OCI spec: no check was evaluated",
		"",
	}, "\n")
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteJSON(t *testing.T) {
	reports := sampleReports()
	reports[1].Findings = nil
	var b bytes.Buffer
	if err := WriteJSON(&b, reports); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	sc := bufio.NewScanner(&b)
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != len(reports) {
		t.Fatalf("%d lines, want %d", len(lines), len(reports))
	}
	first, _ := json.Marshal(lines[0])
	for _, want := range []string{
		`"container":{"id":"abc123","image":"registry.internal/web:1","name":"web"}`,
		`{"check":"4.1","detail":"process runs as uid 0 (root)","severity":"medium","title":"Ensure that a user for the container has been created"}`,
	} {
		if !bytes.Contains(first, []byte(want)) {
			t.Errorf("first report %s lacks %s", first, want)
		}
	}
	if f, ok := lines[1]["findings"].([]any); !ok || len(f) != 0 {
		t.Errorf("report without findings: findings = %#v, want []", lines[1]["findings"])
	}
	if !strings.Contains(out, `/etc\t<&> at`) {
		t.Errorf("HTML characters escaped, or the tab lost:\n%s", out)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrors(t *testing.T) {
	if err := WriteTable(failingWriter{}, sampleReports()); err == nil {
		t.Error("WriteTable: no error from a failing writer")
	}
	if err := WriteJSON(failingWriter{}, sampleReports()); err == nil {
		t.Error("WriteJSON: no error from a failing writer")
	}
}
