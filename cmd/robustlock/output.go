//go:build linux

package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// progress prints the demo's running status: on a terminal one line
// redrawn in place (carriage return, padded over the previous text), and
// elsewhere a plain line every interval, so logs stay readable. Event lines
// (-v) are printed above the status line.
type progress struct {
	w        io.Writer
	tty      bool
	interval time.Duration
	next     time.Time
	line     string // the status line now on screen (tty)
}

func newProgress(w io.Writer, tty bool) *progress {
	p := &progress{w: w, tty: tty, interval: time.Second}
	if tty {
		p.interval = 100 * time.Millisecond
	}
	p.next = time.Now().Add(p.interval)
	return p
}

// status shows line if the interval has passed since the last one.
func (p *progress) status(now time.Time, line string) {
	if now.Before(p.next) {
		return
	}
	p.next = now.Add(p.interval)
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	pad := max(0, utf8.RuneCountInString(p.line)-utf8.RuneCountInString(line))
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	p.line = line
}

// event prints a line of its own, keeping the status line below it.
func (p *progress) event(line string) {
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	pad := max(0, utf8.RuneCountInString(p.line)-utf8.RuneCountInString(line))
	fmt.Fprintf(p.w, "\r%s%s\n%s", line, strings.Repeat(" ", pad), p.line)
}

// done erases the status line, leaving the cursor at the start of it.
func (p *progress) done() {
	if p.tty && p.line != "" {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", utf8.RuneCountInString(p.line)))
		p.line = ""
	}
}

// short formats a latency with three significant digits: 412µs, 1.27ms,
// 2.05s.
func short(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// median returns the middle of ds (0 for none).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
