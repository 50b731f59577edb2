package kernel

import "testing"

// TestFilling: the ring's states start at their high mark and end below
// their low one, never flapping between.
func TestFilling(t *testing.T) {
	const size = 800
	for _, c := range []struct {
		avail int
		was   bool
		want  bool
	}{
		{0, false, false},
		{199, false, false},
		{200, false, true}, // a quarter: pressed
		{199, true, true},  // still above an eighth
		{100, true, true},  // an eighth: still
		{99, true, false},  // below: released
		{150, false, false},
		{800, false, true},
	} {
		if got := filling(c.avail, size, c.was, pressHigh, pressLow, pressOf); got != c.want {
			t.Errorf("pressed: filling(%d of %d, was %v) = %v, want %v", c.avail, size, c.was, got, c.want)
		}
	}
	if !filling(600, size, false, backlogHigh, backlogLow, backlogOf) || filling(599, size, false, backlogHigh, backlogLow, backlogOf) ||
		!filling(400, size, true, backlogHigh, backlogLow, backlogOf) || filling(399, size, true, backlogHigh, backlogLow, backlogOf) {
		t.Error("backlog: want on at three quarters, off below half")
	}
}
