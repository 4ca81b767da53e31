package bench

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// workerEnv names the environment variable that turns a re-executed bench
// binary into a worker process; its value is the worker's spec as JSON.
const workerEnv = "ROBUSTLOCK_BENCH_WORKER"

// options are bench.Main's flags.
type options struct {
	reps       int
	procs      []int
	cs         []int64
	goroutines int
	runTime    time.Duration
	handoff    int
	delay      time.Duration
	recovery   int
	segOps     int
	quick      bool
	out        string
	from       string
	sections   map[string]bool
	only       map[string]bool
}

// The suite's sections, in the order they run.
var allSections = []string{"uncontended", "sync", "contended", "handoff", "recovery", "segment"}

// Main runs the comparison suite as the `robustlock bench` command does,
// with its command-line arguments (after "bench"), and returns the exit
// status: 0 when every section ran (targets missed are reported, not
// failures), 1 when a measurement failed, 2 on bad usage (reported on
// stderr, then the usage line; -h prints the help on stdout). The table
// goes to stdout, progress to stderr. Worker processes re-execute
// os.Executable() with the argument "bench" and a worker description in
// the environment (ROBUSTLOCK_BENCH_WORKER); Main recognises them before
// anything else, so a program only has to route "bench" to Main.
func Main(args []string, stdout, stderr io.Writer) int {
	if spec := os.Getenv(workerEnv); spec != "" {
		return runWorker(spec, stdout, stderr)
	}
	opt, err := parseFlags(args, stdout, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if opt.from != "" {
		return render(opt, stdout, stderr)
	}
	return runSuite(opt, stdout, stderr)
}

// render prints (and with -out writes) the report of an earlier run.
func render(opt *options, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(opt.from)
	if err != nil {
		fmt.Fprintf(stderr, "robustlock: bench: %v\n", err)
		return 1
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		fmt.Fprintf(stderr, "robustlock: bench: %s: %v\n", opt.from, err)
		return 1
	}
	r.Targets = evalTargets(&r)
	r.text(stdout)
	if opt.out != "" {
		if err := writeOutputs(&r, opt.out); err != nil {
			fmt.Fprintf(stderr, "robustlock: bench: -out: %v\n", err)
			return 1
		}
	}
	return 0
}

// synopsis is bench's usage line.
const synopsis = "[flags]"

// usageError reports a usage error as every robustlock command does: what
// is wrong, then the usage line, on stderr. It returns errUsage.
func usageError(stderr io.Writer, format string, a ...any) error {
	fmt.Fprintf(stderr, "robustlock: bench: %s\n", fmt.Sprintf(format, a...))
	fmt.Fprintf(stderr, "usage: robustlock bench %s (see 'robustlock bench -h')\n", synopsis)
	return errUsage
}

var errUsage = errors.New("usage error")

// parseFlags parses bench's flags. -h prints the help on stdout and
// returns flag.ErrHelp; any error has been reported on stderr.
func parseFlags(args []string, stdout, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("robustlock bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // help is printed below, for -h only
	opt := &options{}
	fs.IntVar(&opt.reps, "reps", 7, "repetitions of every measurement; medians and spread are over these")
	procs := fs.String("procs", defaultProcs(), "comma-separated process counts for the contended runs")
	cs := fs.String("cs", "0,100", "comma-separated critical-section lengths in ns for the contended runs")
	fs.IntVar(&opt.goroutines, "g", 4, "goroutines per process in robustlock's multi-goroutine contended rows")
	fs.DurationVar(&opt.runTime, "run", 250*time.Millisecond, "target length of one contended run (sets the rounds K); 0: fixed small K")
	fs.IntVar(&opt.handoff, "handoff", 2000, "hand-off rounds per repetition")
	fs.DurationVar(&opt.delay, "delay", 50*time.Microsecond, "hand-off: how long the holder keeps the lock once the waiter is waiting")
	fs.IntVar(&opt.recovery, "recovery", 3, "kills per repetition in the recovery runs")
	fs.IntVar(&opt.segOps, "segops", 2000, "segment opens and creations per repetition")
	fs.BoolVar(&opt.quick, "quick", false, "a short run with tiny counts (tests, CI): figures are rough")
	fs.StringVar(&opt.out, "out", "", "directory to write results.md, results.json and SVG charts into")
	fs.StringVar(&opt.from, "from", "", "measure nothing: render a results.json written by an earlier run (with -out: its files again)")
	sections := fs.String("sections", strings.Join(allSections, ","), "sections to run: "+strings.Join(allSections, ","))
	only := fs.String("contenders", "", "comma-separated contenders to run (default all; robustlock always runs)")
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, "Usage: robustlock bench %s\n\n"+
			"Measure robustlock against glibc's robust pthread mutex (C loop and cgo calls),\n"+
			"flock, fcntl OFD locks, SysV semaphores with SEM_UNDO and sync.Mutex, in one run,\n"+
			"and print each figure with its ratio to robustlock. The tables go to stdout;\n"+
			"progress (what is measured, the share done and an estimate of the time left)\n"+
			"goes to stderr, as one line redrawn in place on a terminal.\n\nFlags:\n", synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return nil, flag.ErrHelp
	case err != nil:
		return nil, usageError(stderr, "%v", err)
	case fs.NArg() > 0:
		return nil, usageError(stderr, "unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if opt.quick {
		// Small enough for CI under -race; each figure is still measured.
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("reps", func() { opt.reps = 1 })
		def("procs", func() { *procs = "1,2" })
		def("run", func() { opt.runTime = 0 })
		def("handoff", func() { opt.handoff = 20 })
		def("delay", func() { opt.delay = 20 * time.Microsecond })
		def("recovery", func() { opt.recovery = 1 })
		def("segops", func() { opt.segOps = 20 })
		def("g", func() { opt.goroutines = 2 })
	}
	if opt.procs, err = parseInts(*procs, 1); err != nil {
		return nil, usageError(stderr, "-procs: %v", err)
	}
	css, err := parseInts(*cs, 0)
	if err != nil {
		return nil, usageError(stderr, "-cs: %v", err)
	}
	for _, c := range css {
		opt.cs = append(opt.cs, int64(c))
	}
	for _, c := range []struct {
		name string
		n    int
		min  int
	}{{"reps", opt.reps, 1}, {"g", opt.goroutines, 1}, {"handoff", opt.handoff, 2}, {"recovery", opt.recovery, 1}, {"segops", opt.segOps, 1}} {
		if c.n < c.min {
			return nil, usageError(stderr, "invalid value %d for flag -%s: must be %d or more", c.n, c.name, c.min)
		}
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"run", opt.runTime}, {"delay", opt.delay}} {
		if d.d < 0 {
			return nil, usageError(stderr, "invalid value %v for flag -%s: must not be negative", d.d, d.name)
		}
	}
	opt.sections = map[string]bool{}
	for _, s := range strings.Split(*sections, ",") {
		s = strings.TrimSpace(s)
		if !contains(allSections, s) {
			return nil, usageError(stderr, "-sections: unknown section %q (want some of %s)", s, strings.Join(allSections, ","))
		}
		opt.sections[s] = true
	}
	if *only != "" {
		opt.only = map[string]bool{cRobust: true}
		for _, c := range strings.Split(*only, ",") {
			c = strings.TrimSpace(c)
			if _, ok := contenderByName(c); !ok {
				return nil, usageError(stderr, "-contenders: unknown contender %q", c)
			}
			opt.only[c] = true
		}
	}
	return opt, nil
}

// defaultProcs is 1,2,4,8, and more when the machine has the cores.
func defaultProcs() string {
	ps := []string{"1", "2", "4", "8"}
	for p := 16; p <= numCPU(); p *= 2 {
		ps = append(ps, strconv.Itoa(p))
	}
	return strings.Join(ps, ",")
}

// parseInts parses a comma-separated list of whole numbers of at least
// lo.
func parseInts(s string, lo int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < lo {
			return nil, fmt.Errorf("%q is not a whole number of at least %d", f, lo)
		}
		out = append(out, n)
	}
	return out, nil
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
