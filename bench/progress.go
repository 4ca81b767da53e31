package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// meter is the suite's progress on stderr: the lines each section prints,
// and the overall progress, the share of the planned work done with the
// time spent and an estimate of the time left. On a terminal the overall
// progress is one status line kept below the others and redrawn in place;
// elsewhere (a log, a pipe) it is a plain line after each section and at
// most every logEvery in between, so logs stay readable.
//
// The plan is a list of work units, each with a rough cost in seconds
// worked out from the flags (plan in suite_linux.go). The estimate of the
// time left scales the remaining cost by how long the units done so far
// really took against their planned cost, so a machine slower or faster
// than the guess corrects it as the run goes.
//
// Synchronization: a meter is used by the suite's goroutine only.
type meter struct {
	w        io.Writer
	tty      bool
	start    time.Time
	total    float64 // planned cost of the whole run
	done     float64 // planned cost of the units done
	section  string
	status   string // the status line on screen (tty)
	lastLog  time.Time
	logEvery time.Duration
}

// newMeter returns a meter writing to w, a terminal or not as x/term sees
// it.
func newMeter(w io.Writer, total float64) *meter {
	m := &meter{w: w, total: total, start: time.Now(), logEvery: 30 * time.Second}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		m.tty = true
	}
	m.lastLog = m.start
	return m
}

// Write prints p, whole lines of a section's output, above the status
// line.
func (m *meter) Write(p []byte) (int, error) {
	if !m.tty {
		return m.w.Write(p)
	}
	m.erase()
	n, err := m.w.Write(p)
	m.draw()
	return n, err
}

// enter starts a section.
func (m *meter) enter(section string) {
	m.section = section
	m.draw()
}

// advance records a unit of the given planned cost as done.
func (m *meter) advance(cost float64) {
	m.done = min(m.done+cost, m.total)
	if m.tty {
		m.draw()
		return
	}
	if now := time.Now(); now.Sub(m.lastLog) >= m.logEvery {
		m.log(now)
	}
}

// leave ends a section: off a terminal, it says how far the run is.
func (m *meter) leave() {
	if !m.tty {
		m.log(time.Now())
	}
}

// finish erases the status line.
func (m *meter) finish() {
	if m.tty {
		m.erase()
	}
}

func (m *meter) log(now time.Time) {
	m.lastLog = now
	fmt.Fprintf(m.w, "  [%s]\n", m.line(now))
}

// line is the overall progress: "42% done after 1m03s, about 1m27s left".
func (m *meter) line(now time.Time) string {
	el := now.Sub(m.start)
	share := 0.0
	if m.total > 0 {
		share = m.done / m.total
	}
	s := fmt.Sprintf("%3.0f%% done after %s", 100*share, roundDuration(el))
	if left, ok := m.left(el); ok {
		s += ", about " + roundDuration(left) + " left"
	}
	return s
}

// left estimates the time left: the remaining planned cost, scaled by how
// the time spent compares with the planned cost of what is done. No
// estimate before a few percent of the run, when the ratio means little.
func (m *meter) left(el time.Duration) (time.Duration, bool) {
	if m.done <= 0 || m.done < 0.02*m.total {
		return 0, false
	}
	rate := el.Seconds() / m.done
	return time.Duration((m.total - m.done) * rate * float64(time.Second)), true
}

func (m *meter) draw() {
	if !m.tty || m.section == "" {
		return
	}
	s := "  " + m.section + ": " + m.line(time.Now())
	pad := max(0, len(m.status)-len(s))
	fmt.Fprintf(m.w, "\r%s%s", s, strings.Repeat(" ", pad))
	m.status = s
}

func (m *meter) erase() {
	if m.status != "" {
		fmt.Fprintf(m.w, "\r%s\r", strings.Repeat(" ", len(m.status)))
		m.status = ""
	}
}

// roundDuration prints d to the second (to the tenth below ten seconds).
func roundDuration(d time.Duration) string {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
