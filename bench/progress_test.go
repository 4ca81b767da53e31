package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestMeterEstimate: the time left is the remaining planned cost scaled
// by the time the done part really took; none before 2% of the run.
func TestMeterEstimate(t *testing.T) {
	m := &meter{total: 10}
	if _, ok := m.left(time.Second); ok {
		t.Error("an estimate with nothing done")
	}
	m.done = 0.1
	if _, ok := m.left(time.Second); ok {
		t.Error("an estimate after 1% of the run")
	}
	m.done = 2.5 // a quarter, in 30s: 90s left
	if left, ok := m.left(30 * time.Second); !ok || left != 90*time.Second {
		t.Errorf("left = %v, %v; want 1m30s", left, ok)
	}
	if got := m.line(m.start.Add(30 * time.Second)); got != " 25% done after 30s, about 1m30s left" {
		t.Errorf("line = %q", got)
	}
}

// TestMeterLog: off a terminal, section lines pass through unchanged and
// the overall progress is a line of its own after each section.
func TestMeterLog(t *testing.T) {
	var b bytes.Buffer
	m := newMeter(&b, 4)
	if m.tty {
		t.Fatal("a bytes.Buffer taken for a terminal")
	}
	m.enter("contended")
	m.Write([]byte("  a row\n"))
	m.advance(1)
	m.leave()
	m.advance(3)
	m.leave()
	m.finish()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 3 || lines[0] != "  a row" ||
		!strings.HasPrefix(lines[1], "  [ 25% done after ") || !strings.HasPrefix(lines[2], "  [100% done after ") {
		t.Errorf("meter wrote:\n%s", b.String())
	}
}
