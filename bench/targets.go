package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// evalTargets checks the targets against this run's ratios.
func evalTargets(r *report) []target {
	var ts []target
	add := func(name, want string, got float64, ok func(float64) bool) {
		t := target{Name: name, Want: want}
		if math.IsNaN(got) || math.IsInf(got, 0) || got == 0 {
			t.Note = "not measured"
		} else {
			t.Got, t.Met = got, ok(got)
		}
		ts = append(ts, t)
	}
	atMost := func(v float64) func(float64) bool { return func(x float64) bool { return x <= v } }
	atLeast := func(v float64) func(float64) bool { return func(x float64) bool { return x >= v } }
	if len(r.Uncontended) > 0 {
		rl := findUnc(r.Uncontended, cRobust)
		add("uncontended: robustlock ÷ glibc-C", "<= 1.00x", rl/findUnc(r.Uncontended, cGlibcC), atMost(1))
		add("uncontended: glibc-cgo ÷ robustlock", ">= 3x", findUnc(r.Uncontended, cGlibcGo)/rl, atLeast(3))
		for _, c := range []string{cFlock, cOFD, cSysV} {
			add("uncontended: "+c+" ÷ robustlock", ">= 20x", findUnc(r.Uncontended, c)/rl, atLeast(20))
		}
	}
	for _, x := range r.Sync {
		want := 1.2
		if x.Shape == "Mutex" || x.Shape == "MutexSlack" {
			want = 2.5
		}
		if x.Shape == "MutexUncontended" {
			continue // no target: the uncontended table compares with glibc
		}
		add("sync shape "+x.Shape+": robustlock ÷ sync.Mutex", fmt.Sprintf("<= %.2fx", want), x.Ratio, atMost(want))
	}
	for _, cs := range r.CS {
		if len(r.Contended) == 0 {
			break
		}
		for _, x := range r.Procs {
			if x < 2 {
				continue
			}
			rl, ok1 := findCon(r.Contended, "robustlock 1 proc", x, cs)
			sy, ok2 := findCon(r.Contended, "sync.Mutex 1 proc", x, cs)
			thr, mx := math.NaN(), math.NaN()
			if ok1 && ok2 {
				thr, mx = rl.Throughput.Median/sy.Throughput.Median, rl.Max.Median/sy.Max.Median
			}
			add(fmt.Sprintf("1 process, %d goroutines, cs %s: throughput robustlock ÷ sync.Mutex", x, csName(cs)), ">= 0.90x", thr, atLeast(0.9))
			add(fmt.Sprintf("1 process, %d goroutines, cs %s: max wait robustlock ÷ sync.Mutex", x, csName(cs)), "<= 3.00x", mx, atMost(3))
		}
	}
	for _, cs := range r.CS {
		if len(r.Contended) == 0 {
			break
		}
		for _, p := range r.Procs {
			if p < 2 || p > 8 {
				continue
			}
			rl, ok1 := findCon(r.Contended, cRobust, p, cs)
			gc, ok2 := findCon(r.Contended, cGlibcC, p, cs)
			thr, p99 := math.NaN(), math.NaN()
			if ok1 && ok2 {
				thr, p99 = rl.Throughput.Median/gc.Throughput.Median, rl.P99.Median/gc.P99.Median
			}
			add(fmt.Sprintf("contended %d procs, cs %s: throughput robustlock ÷ glibc-C", p, csName(cs)), ">= 0.90x", thr, atLeast(0.9))
			add(fmt.Sprintf("contended %d procs, cs %s: p99 wait robustlock ÷ glibc-C", p, csName(cs)), "<= 1.50x", p99, atMost(1.5))
		}
	}
	if len(r.Recovery) > 0 {
		var rl, gc float64
		for _, x := range r.Recovery {
			if x.Unavailable != "" {
				continue
			}
			switch x.Contender {
			case cRobust:
				rl = x.Latency.Median
			case cGlibcC:
				gc = x.Latency.Median
			}
		}
		add("recovery: robustlock ÷ glibc-C", "<= 2.00x", rl/gc, atMost(2))
	}
	return ts
}

// writeOutputs writes results.md, results.json and the charts into dir.
func writeOutputs(r *report, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	charts, err := writeCharts(r, dir)
	if err != nil {
		return err
	}
	jf, err := os.Create(filepath.Join(dir, "results.json"))
	if err != nil {
		return err
	}
	if err := r.writeJSON(jf); err != nil {
		jf.Close()
		return err
	}
	if err := jf.Close(); err != nil {
		return err
	}
	mf, err := os.Create(filepath.Join(dir, "results.md"))
	if err != nil {
		return err
	}
	r.markdown(mf, charts)
	return mf.Close()
}
