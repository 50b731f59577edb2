package store

import (
	"testing"

	"github.com/ringfence/ringfence/sensor/event"
)

// TestEveryKindHasACode: the store's kind codes are positions in its own
// table (the on-disk format), so a kind added to the event contract must be
// appended there too, or it would be stored as no kind at all.
func TestEveryKindHasACode(t *testing.T) {
	for _, k := range event.Kinds() {
		c := kindCode(k)
		if c == 0 || kindOf(c) != k {
			t.Errorf("kind %q has no code of its own in the store (code %d)", k, c)
		}
	}
	for _, v := range []event.Verdict{event.VerdictAllow, event.VerdictDeny, event.VerdictAudit} {
		if c := verdictCode(v); c == 0 || verdictOf(c) != v {
			t.Errorf("verdict %q has no code of its own in the store", v)
		}
	}
}
