package bench

import (
	"encoding/json"
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
var allSections = []string{"uncontended", "contended", "handoff", "recovery", "segment"}

// Main runs the comparison suite as the `robustlock bench` command does,
// with its command-line arguments (after "bench"), and returns the exit
// status: 0 when every section ran (targets missed are reported, not
// failures), 1 when a measurement failed, 2 on bad usage. The table goes
// to stdout, progress to stderr. Worker processes re-execute
// os.Executable() with the argument "bench" and a worker description in
// the environment (ROBUSTLOCK_BENCH_WORKER); Main recognises them before
// anything else, so a program only has to route "bench" to Main.
func Main(args []string, stdout, stderr io.Writer) int {
	if spec := os.Getenv(workerEnv); spec != "" {
		return runWorker(spec, stdout, stderr)
	}
	opt, err := parseFlags(args, stderr)
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
		fmt.Fprintf(stderr, "robustlock bench: %v\n", err)
		return 1
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		fmt.Fprintf(stderr, "robustlock bench: %s: %v\n", opt.from, err)
		return 1
	}
	r.Targets = evalTargets(&r)
	r.text(stdout)
	if opt.out != "" {
		if err := writeOutputs(&r, opt.out); err != nil {
			fmt.Fprintf(stderr, "robustlock bench: -out: %v\n", err)
			return 1
		}
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("robustlock bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: robustlock bench [flags]\n\n"+
			"Measures robustlock against glibc's robust pthread mutex (C loop and cgo calls),\n"+
			"flock, fcntl OFD locks, SysV semaphores with SEM_UNDO and sync.Mutex, in one run,\n"+
			"and prints each figure with its ratio to robustlock. Progress goes to stderr.\n\nflags:\n")
		fs.PrintDefaults()
	}
	opt := &options{}
	fs.IntVar(&opt.reps, "reps", 7, "repetitions of every measurement; medians and spread are over these")
	procs := fs.String("procs", defaultProcs(), "comma-separated process counts for the contended runs")
	cs := fs.String("cs", "0,100", "comma-separated critical-section lengths in ns for the contended runs")
	fs.IntVar(&opt.goroutines, "g", 4, "goroutines per process in robustlock's multi-goroutine contended rows")
	fs.DurationVar(&opt.runTime, "run", 250*time.Millisecond, "target length of one contended run (sets the rounds K)")
	fs.IntVar(&opt.handoff, "handoff", 2000, "hand-off rounds per repetition")
	fs.DurationVar(&opt.delay, "delay", 50*time.Microsecond, "hand-off: how long the holder keeps the lock once the waiter is waiting")
	fs.IntVar(&opt.recovery, "recovery", 3, "kills per repetition in the recovery runs")
	fs.IntVar(&opt.segOps, "segops", 2000, "segment opens and creations per repetition")
	fs.BoolVar(&opt.quick, "quick", false, "a short run with tiny counts (tests, CI): figures are rough")
	fs.StringVar(&opt.out, "out", "", "directory to write results.md, results.json and SVG charts into")
	fs.StringVar(&opt.from, "from", "", "measure nothing: render a results.json written by an earlier run (with -out: its files again)")
	sections := fs.String("sections", strings.Join(allSections, ","), "sections to run: "+strings.Join(allSections, ","))
	only := fs.String("contenders", "", "comma-separated contenders to run (default all; robustlock always runs)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "robustlock bench: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return nil, fmt.Errorf("usage")
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
	var err error
	bad := func(name string, e error) error {
		fmt.Fprintf(stderr, "robustlock bench: -%s: %v\n", name, e)
		return e
	}
	if opt.procs, err = parseInts(*procs); err != nil {
		return nil, bad("procs", err)
	}
	css, err := parseInts(*cs)
	if err != nil {
		return nil, bad("cs", err)
	}
	for _, c := range css {
		opt.cs = append(opt.cs, int64(c))
	}
	if opt.reps < 1 || opt.goroutines < 1 || opt.handoff < 2 || opt.recovery < 1 || opt.segOps < 1 {
		return nil, bad("reps", fmt.Errorf("counts must be positive (reps, g, recovery, segops >= 1; handoff >= 2)"))
	}
	opt.sections = map[string]bool{}
	for _, s := range strings.Split(*sections, ",") {
		s = strings.TrimSpace(s)
		if !contains(allSections, s) {
			return nil, bad("sections", fmt.Errorf("unknown section %q", s))
		}
		opt.sections[s] = true
	}
	if *only != "" {
		opt.only = map[string]bool{cRobust: true}
		for _, c := range strings.Split(*only, ",") {
			c = strings.TrimSpace(c)
			if _, ok := contenderByName(c); !ok {
				return nil, bad("contenders", fmt.Errorf("unknown contender %q", c))
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

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a count", f)
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

// selected reports whether the -contenders flag lets c run.
//
//lint:ignore U1000 used by the Linux suite; unused where it is not built
func (o *options) selected(c string) bool { return o.only == nil || o.only[c] }
