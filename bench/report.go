package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// report is one run of the suite: what was measured, where, and how. It is
// written as JSON as is, and rendered as text and markdown tables.
type report struct {
	Machine     machine           `json:"machine"`
	Reps        int               `json:"reps"`
	Quick       bool              `json:"quick"`
	Procs       []int             `json:"procs"`
	CS          []int64           `json:"critical_sections_ns"`
	G           int               `json:"goroutines_per_process"`
	HandoffWait string            `json:"handoff_hold"`
	Started     time.Time         `json:"started"`
	Elapsed     string            `json:"elapsed"`
	Contenders  []contender       `json:"contenders"`
	Unavailable map[string]string `json:"unavailable"`
	Uncontended []uncRow          `json:"uncontended"`
	Sync        []syncRow         `json:"sync_shapes"`
	Contended   []conRow          `json:"contended"`
	Handoff     []latRow          `json:"handoff"`
	Recovery    []recRow          `json:"recovery"`
	Segment     []segRow          `json:"segment"`
	Targets     []target          `json:"targets"`
	Errors      []string          `json:"errors,omitempty"`
}

// machine describes where the figures come from.
type machine struct {
	CPU         string `json:"cpu"`
	Cores       int    `json:"cores"`
	GOMAXPROCS  int    `json:"gomaxprocs"`
	VM          bool   `json:"virtual_machine"`
	Kernel      string `json:"kernel"`
	Arch        string `json:"arch"`
	Go          string `json:"go"`
	Glibc       string `json:"glibc"`
	Cgo         bool   `json:"cgo"`
	Clocksource string `json:"clocksource"`
	LoadBefore  string `json:"load_before"`
	LoadAfter   string `json:"load_after"`
	// OthersCPU is the share of all cores that processes other than the
	// bench and its workers kept busy while it ran (the load average
	// cannot tell: the workers raise it too).
	OthersCPU float64 `json:"others_cpu_share"`
}

type uncRow struct {
	Contender   string  `json:"contender"`
	NsOp        summary `json:"ns_per_op"`
	AllocsOp    float64 `json:"allocs_per_op"`
	N           int     `json:"ops_per_rep"`
	Unavailable string  `json:"unavailable,omitempty"`
}

// conRow is one series at one x: Procs processes of G goroutines each.
type conRow struct {
	Series      string  `json:"series"`
	Contender   string  `json:"contender"`
	Procs       int     `json:"procs"`
	G           int     `json:"goroutines"`
	X           int     `json:"x"` // processes, or goroutines for the one-process series
	CS          int64   `json:"cs_ns"`
	K           int     `json:"rounds_per_goroutine"`
	Throughput  summary `json:"ops_per_sec"`
	P50         summary `json:"p50_ns"`
	P99         summary `json:"p99_ns"`
	Max         summary `json:"max_ns"`
	Unavailable string  `json:"unavailable,omitempty"`
}

type latRow struct {
	Contender   string  `json:"contender"`
	Median      summary `json:"median_ns"`
	P99         summary `json:"p99_ns"`
	Samples     int     `json:"samples"`
	Unavailable string  `json:"unavailable,omitempty"`
}

type recRow struct {
	Contender   string  `json:"contender"`
	Latency     summary `json:"latency_ns"` // over every kill, not per rep
	Told        string  `json:"told"`
	Samples     int     `json:"samples"`
	Unavailable string  `json:"unavailable,omitempty"`
}

type segRow struct {
	Name string  `json:"name"`
	What string  `json:"what"`
	NsOp summary `json:"ns_per_op"`
	N    int     `json:"ops_per_rep"`
}

type target struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Met  bool    `json:"met"`
	Note string  `json:"note,omitempty"`
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// A table is rendered as aligned text for the terminal and as markdown.
type table struct {
	title  string
	header []string
	rows   [][]string
	notes  []string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) text(w io.Writer) {
	fmt.Fprintf(w, "\n%s\n%s\n", t.title, strings.Repeat("-", len([]rune(t.title))))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	for _, n := range t.notes {
		fmt.Fprintf(w, "  %s\n", n)
	}
}

func (t *table) markdown(w io.Writer) {
	fmt.Fprintf(w, "\n### %s\n\n| %s |\n|%s\n", t.title, strings.Join(t.header, " | "),
		strings.Repeat("---|", len(t.header)))
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
	if len(t.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range t.notes {
			fmt.Fprintf(w, "%s\n", n)
		}
	}
}

func fmtNs(ns float64) string {
	switch {
	case math.IsNaN(ns):
		return "-"
	case ns < 100:
		return fmt.Sprintf("%.1f ns", ns)
	case ns < 1e4:
		return fmt.Sprintf("%.0f ns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	case ns < 1e9:
		return fmt.Sprintf("%.1f ms", ns/1e6)
	}
	return fmt.Sprintf("%.2f s", ns/1e9)
}

func fmtRate(r float64) string {
	switch {
	case math.IsNaN(r):
		return "-"
	case r >= 1e6:
		return fmt.Sprintf("%.2f M/s", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1f k/s", r/1e3)
	}
	return fmt.Sprintf("%.0f /s", r)
}

func spreadNs(s summary) string   { return fmtNs(s.Min) + " – " + fmtNs(s.Max) }
func spreadRate(s summary) string { return fmtRate(s.Min) + " – " + fmtRate(s.Max) }

func fmtRatio(x float64) string {
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0):
		return "-"
	case x >= 100:
		return fmt.Sprintf("%.0fx", x)
	case x >= 10:
		return fmt.Sprintf("%.1fx", x)
	}
	return fmt.Sprintf("%.2fx", x)
}

// tables lays the report out: machine, each section, targets.
func (r *report) tables() []*table {
	var ts []*table
	if len(r.Uncontended) > 0 {
		t := &table{title: "Uncontended lock+unlock, one goroutine",
			header: []string{"contender", "ns/op (median)", "spread (min – max)", "allocs/op", "÷ robustlock"}}
		base := findUnc(r.Uncontended, cRobust)
		for _, u := range r.Uncontended {
			if u.Unavailable != "" {
				t.add(u.Contender, u.Unavailable, "", "", "")
				continue
			}
			t.add(u.Contender, fmtNs(u.NsOp.Median), spreadNs(u.NsOp), fmt.Sprintf("%.0f", u.AllocsOp),
				fmtRatio(u.NsOp.Median/base))
		}
		t.notes = append(t.notes, "÷ robustlock: the contender's time over robustlock's; above 1 means robustlock is faster.")
		ts = append(ts, t)
	}
	if len(r.Sync) > 0 {
		t := &table{title: "Go's sync.Mutex benchmark shapes (sync/mutex_test.go), in one process",
			header: []string{"shape", "sync.Mutex ns/op", "robustlock ns/op", "spread (robustlock)", "robustlock ÷ sync.Mutex"}}
		for _, x := range r.Sync {
			t.add(x.Shape, fmtNs(x.Sync.Median), fmtNs(x.Robust.Median), spreadNs(x.Robust), fmtRatio(x.Ratio))
		}
		t.notes = append(t.notes, "Each rep runs the shape on sync.Mutex, then on robustlock.Mutex (in a MAP_SHARED mapping), with testing.Benchmark; medians of the reps.")
		ts = append(ts, t)
	}
	for _, cs := range r.CS {
		var rows []conRow
		for _, c := range r.Contended {
			if c.CS == cs {
				rows = append(rows, c)
			}
		}
		if len(rows) == 0 {
			continue
		}
		t := &table{title: fmt.Sprintf("Contended, critical section %s: throughput and per-acquisition wait", csName(cs)),
			header: []string{"series", "procs×goroutines", "throughput (median)", "spread", "p50", "p99", "max",
				"thr ÷ robustlock", "p99 ÷ robustlock"}}
		for _, c := range rows {
			shape := fmt.Sprintf("%d×%d", c.Procs, c.G)
			if c.Unavailable != "" {
				t.add(c.Series, shape, c.Unavailable, "", "", "", "", "", "")
				continue
			}
			base, ok := findCon(r.Contended, cRobust, c.X, cs)
			thr, p99 := math.NaN(), math.NaN()
			if ok {
				thr, p99 = c.Throughput.Median/base.Throughput.Median, c.P99.Median/base.P99.Median
			}
			t.add(c.Series, shape, fmtRate(c.Throughput.Median), spreadRate(c.Throughput),
				fmtNs(c.P50.Median), fmtNs(c.P99.Median), fmtNs(c.Max.Median), fmtRatio(thr), fmtRatio(p99))
		}
		t.notes = append(t.notes,
			"Throughput: all rounds ÷ (last process's end − first process's start); wait: clock before lock to clock after it returns, every acquisition, all processes merged.",
			"Ratios against the plain robustlock series at the same x (processes, or goroutines for the one-process series); thr above 1 = faster than robustlock, p99 above 1 = slower.")
		ts = append(ts, t)
	}
	if len(r.Handoff) > 0 {
		t := &table{title: "Hand-off: unlock in one process to lock returning in the other (waiter asleep)",
			header: []string{"contender", "median", "spread of rep medians", "p99", "samples", "÷ robustlock"}}
		var base float64
		for _, h := range r.Handoff {
			if h.Contender == cRobust {
				base = h.Median.Median
			}
		}
		for _, h := range r.Handoff {
			if h.Unavailable != "" {
				t.add(h.Contender, h.Unavailable, "", "", "", "")
				continue
			}
			t.add(h.Contender, fmtNs(h.Median.Median), spreadNs(h.Median), fmtNs(h.P99.Median),
				fmt.Sprint(h.Samples), fmtRatio(h.Median.Median/base))
		}
		ts = append(ts, t)
	}
	if len(r.Recovery) > 0 {
		t := &table{title: "Recovery: SIGKILL of the holder to the next lock returning",
			header: []string{"contender", "median", "spread (min – max)", "next locker told", "kills", "÷ robustlock"}}
		var base float64
		for _, h := range r.Recovery {
			if h.Contender == cRobust {
				base = h.Latency.Median
			}
		}
		for _, h := range r.Recovery {
			if h.Unavailable != "" {
				t.add(h.Contender, h.Unavailable, "", "", "", "")
				continue
			}
			t.add(h.Contender, fmtNs(h.Latency.Median), spreadNs(h.Latency), h.Told, fmt.Sprint(h.Samples),
				fmtRatio(h.Latency.Median/base))
		}
		ts = append(ts, t)
	}
	if len(r.Segment) > 0 {
		t := &table{title: "Segments (tmpfs)", header: []string{"operation", "median", "spread", "÷ robustlock's"}}
		for _, s := range r.Segment {
			base := math.NaN()
			for _, b := range r.Segment {
				if strings.HasPrefix(b.Name, "segment") && segKind(b.Name) == segKind(s.Name) {
					base = b.NsOp.Median
				}
			}
			t.add(s.Name+": "+s.What, fmtNs(s.NsOp.Median), spreadNs(s.NsOp), fmtRatio(s.NsOp.Median/base))
		}
		ts = append(ts, t)
	}
	if len(r.Targets) > 0 {
		t := &table{title: "Targets (ratios from this run)", header: []string{"target", "wanted", "measured", "met"}}
		for _, g := range r.Targets {
			met, got := "MET", fmt.Sprintf("%.3fx", g.Got) // 3 places: 0.899 is not 0.90
			switch {
			case g.Note != "":
				met, got = "n/a", g.Note
			case !g.Met:
				met = "missed"
			}
			t.add(g.Name, g.Want, got, met)
		}
		ts = append(ts, t)
	}
	return ts
}

func segKind(name string) string {
	if strings.HasSuffix(name, "open") {
		return "open"
	}
	return "create"
}

func csName(cs int64) string {
	if cs == 0 {
		return "empty"
	}
	return fmt.Sprintf("%d ns", cs)
}

func findUnc(rows []uncRow, c string) float64 {
	for _, u := range rows {
		if u.Contender == c && u.Unavailable == "" {
			return u.NsOp.Median
		}
	}
	return math.NaN()
}

func findCon(rows []conRow, series string, x int, cs int64) (conRow, bool) {
	for _, c := range rows {
		if c.Series == series && c.X == x && c.CS == cs && c.Unavailable == "" {
			return c, true
		}
	}
	return conRow{}, false
}

func (r *report) header() []string {
	m := r.Machine
	vm := ""
	if m.VM {
		vm = " (virtual machine)"
	}
	glibc := m.Glibc
	if glibc == "" {
		glibc = "unknown"
	}
	reps := fmt.Sprintf("%d repetitions per figure; medians with their spread", r.Reps)
	if r.Quick {
		reps += "; -quick: tiny counts, rough figures"
	}
	return []string{
		fmt.Sprintf("machine: %s, %d cores%s, GOMAXPROCS %d, %s", m.CPU, m.Cores, vm, m.GOMAXPROCS, m.Arch),
		fmt.Sprintf("kernel %s, %s, glibc %s, cgo %v, clocksource %s", m.Kernel, m.Go, glibc, m.Cgo, m.Clocksource),
		fmt.Sprintf("load average before %s (after: %s, the bench's own workers included); other processes used %.0f%% of the CPUs during the run",
			m.LoadBefore, m.LoadAfter, 100*m.OthersCPU),
		reps,
		fmt.Sprintf("started %s, took %s", r.Started.UTC().Format(time.RFC3339), r.Elapsed),
	}
}

func (r *report) text(w io.Writer) {
	fmt.Fprintln(w, "robustlock bench")
	for _, h := range r.header() {
		fmt.Fprintln(w, "  "+h)
	}
	for _, t := range r.tables() {
		t.text(w)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "\nERROR: %s\n", e)
	}
}

func (r *report) markdown(w io.Writer, charts []string) {
	fmt.Fprintln(w, "# robustlock bench results")
	fmt.Fprintln(w)
	for _, h := range r.header() {
		fmt.Fprintf(w, "- %s\n", h)
	}
	fmt.Fprintln(w, "\nContenders:")
	fmt.Fprintln(w)
	for _, c := range r.Contenders {
		fmt.Fprintf(w, "- `%s`: %s\n", c.Name, c.What)
	}
	for _, t := range r.tables() {
		t.markdown(w)
	}
	if len(charts) > 0 {
		fmt.Fprintln(w, "\n### Charts")
		for _, c := range charts {
			fmt.Fprintf(w, "\n![%s](%s)\n", strings.TrimSuffix(c, ".svg"), c)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "\n**ERROR**: %s\n", e)
	}
}
