package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestMain lets the test binary serve as the benchmark's worker process:
// the suite re-executes os.Executable() with the worker's spec in the
// environment, exactly as the robustlock command does.
func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) != "" {
		os.Exit(Main(nil, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestQuick runs the whole suite with -quick and checks its output has
// every contender in every section it belongs to (or says why not), valid
// JSON, markdown and charts. It asserts nothing about speed: figures are
// only ever reported, as ratios measured in the same run.
func TestQuick(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := Main([]string{"-quick", "-out", dir}, &stdout, &stderr)
	t.Logf("stderr:\n%s", stderr.String())
	if code != 0 {
		t.Fatalf("Main = %d; stdout:\n%s", code, stdout.String())
	}
	out := stdout.String()
	for _, c := range contenders {
		if !strings.Contains(out, c.Name) {
			t.Errorf("table has no row for %s", c.Name)
		}
	}
	if !HaveGlibc && !strings.Contains(out, "unavailable: built without cgo") {
		t.Errorf("glibc contenders not reported unavailable without cgo")
	}
	for _, want := range []string{"Uncontended", "Contended", "Hand-off", "Recovery", "Segments", "Targets", "machine:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	seen := map[string]bool{}
	for _, u := range r.Uncontended {
		seen[u.Contender] = true
		if u.Unavailable == "" && !(u.NsOp.Median > 0) {
			t.Errorf("uncontended %s: %v ns/op", u.Contender, u.NsOp.Median)
		}
	}
	for _, c := range contenders {
		if !seen[c.Name] {
			t.Errorf("results.json: no uncontended row for %s", c.Name)
		}
	}
	for _, c := range r.Contended {
		if c.Unavailable == "" && !(c.Throughput.Median > 0 && c.P99.Median >= c.P50.Median) {
			t.Errorf("contended %s %dx%d: throughput %v, p50 %v, p99 %v", c.Series, c.Procs, c.G,
				c.Throughput.Median, c.P50.Median, c.P99.Median)
		}
	}
	for _, rr := range r.Recovery {
		robust := rr.Contender == cRobust || rr.Contender == cGlibcC
		if rr.Unavailable == "" && robust && rr.Told != "yes: EOWNERDEAD" {
			t.Errorf("recovery %s: next locker told %q", rr.Contender, rr.Told)
		}
	}
	if len(r.Handoff) == 0 || len(r.Segment) == 0 || len(r.Targets) == 0 || r.Machine.Go == "" {
		t.Errorf("results.json misses sections: %d hand-off, %d segment, %d target rows; machine %+v",
			len(r.Handoff), len(r.Segment), len(r.Targets), r.Machine)
	}
	var again bytes.Buffer
	if code := Main([]string{"-from", filepath.Join(dir, "results.json")}, &again, &stderr); code != 0 || again.String() != out {
		t.Errorf("-from did not render the same tables (exit %d)", code)
	}
	for _, f := range []string{"results.md", "throughput.svg", "latency.svg", "uncontended.svg", "handoff-recovery.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Error(err)
			continue
		}
		if strings.HasSuffix(f, ".svg") && !bytes.Contains(b, []byte("<svg")) {
			t.Errorf("%s is not SVG", f)
		}
	}
}

func TestFlags(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"-reps", "0"}, {"-procs", "x"}, {"-procs", "0"}, {"-cs", "-1"}, {"-run", "-1s"},
		{"-handoff", "1"}, {"-sections", "nope"}, {"-contenders", "nope"}, {"-no-such-flag"}, {"extra"}} {
		out.Reset()
		errb.Reset()
		code := Main(args, &out, &errb)
		lines := strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n")
		if code != 2 || out.Len() != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "robustlock: bench: ") ||
			lines[1] != "usage: robustlock bench [flags] (see 'robustlock bench -h')" {
			t.Errorf("Main(%q) = %d, stdout %q, stderr %q; want 2, the error, then the usage line", args, code, out.String(), errb.String())
		}
	}
	out.Reset()
	errb.Reset()
	if code := Main([]string{"-h"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "Usage: robustlock bench ") || errb.Len() != 0 {
		t.Errorf("Main(-h) = %d, stdout %q, stderr %q; want 0 and the help on stdout", code, out.String(), errb.String())
	}
}

func TestHist(t *testing.T) {
	h := newHist()
	for v := int64(1); v <= 100000; v++ {
		h.add(v)
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		got, want := h.quantile(q), q*100000
		if math.Abs(got-want)/want > 0.02 {
			t.Errorf("quantile(%v) = %v, want %v within 2%%", q, got, want)
		}
	}
	if h.quantile(1) != 100000 {
		t.Errorf("max = %v", h.quantile(1))
	}
	o := newHist()
	o.add(1 << 40)
	h.merge(o)
	if h.N != 100001 || h.Max != 1<<40 {
		t.Errorf("merge: n %d max %d", h.N, h.Max)
	}
	for b := 0; b < 3000; b++ {
		if got := bucketOf(int64(valueOf(b))); got != b {
			t.Fatalf("bucketOf(valueOf(%d)) = %d", b, got)
		}
	}
	s := summarize([]float64{5, 1, 3})
	if s.Median != 3 || s.Min != 1 || s.Max != 5 {
		t.Errorf("summarize: %+v", s)
	}
}
