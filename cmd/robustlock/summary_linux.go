//go:build linux

package main

// What the demo prints: the status line while it runs, the table at the
// end and the verdict.

import (
	"fmt"
	"slices"
	"text/tabwriter"
	"time"
)

func (d *demo) statusLine(now time.Time) string {
	el := now.Sub(d.start)
	ops := d.l.ops.Load()
	held := "held"
	if d.l.violations.Load() > 0 {
		held = "BROKEN"
	}
	longest := "-"
	if len(d.recTimes) > 0 {
		longest = short(slices.Max(d.recTimes))
	}
	return fmt.Sprintf("%4.1fs  %d transfers (%.0f/s)  kills %d, %d holding  recovered %d  max %s  invariant %s",
		el.Seconds(), ops, float64(ops)/el.Seconds(), len(d.killed), len(d.killAt), d.l.recoveries.Load(), longest, held)
}

// table prints the summary, and keeps the counters verdict needs: it must
// run before cleanup unmaps the ledger.
func (d *demo) table() {
	el := time.Since(d.start)
	ops := d.l.ops.Load()
	holding, mid, aimed := 0, 0, 0
	for _, k := range d.killed {
		if k.holding {
			holding++
			if k.phase == phaseMidTransfer {
				mid++
			}
		}
		if k.aimed {
			aimed++
		}
	}
	rec := d.l.recoveries.Load()
	d.recoveries, d.violations = rec, d.l.violations.Load()
	fmt.Fprintln(d.stdout)
	tw := tabwriter.NewWriter(d.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "operations\t%d transfers\t%.0f/s over %.1fs\n", ops, float64(ops)/el.Seconds(), el.Seconds())
	fmt.Fprintf(tw, "workers\t%d started\t%d at a time\n", d.started, d.workers)
	fmt.Fprintf(tw, "kills\t%d\t%d aimed at a worker mid-transfer\n", len(d.killed), aimed)
	fmt.Fprintf(tw, "kills holding the lock\t%d\t%d of them mid-transfer\n", holding, mid)
	how := fmt.Sprintf("%d rolled back a half-done transfer", d.l.rollbacks.Load())
	if d.finalRecov {
		how += ", 1 by the demo at the end"
	}
	fmt.Fprintf(tw, "recoveries\t%d\t%s\n", rec, how)
	if len(d.recTimes) > 0 {
		fmt.Fprintf(tw, "longest recovery\t%s\tmedian %s, from the kill to the next lock\n",
			short(slices.Max(d.recTimes)), short(median(d.recTimes)))
	} else {
		fmt.Fprintf(tw, "longest recovery\t-\t\n")
	}
	checks, bad := d.l.checks.Load(), d.l.violations.Load()
	switch {
	case bad == 0 && d.finalOK:
		fmt.Fprintf(tw, "invariant\theld\t%d accounts summed to %d in all %d checks under the lock\n", numAccounts, d.l.total, checks)
	case bad == 0:
		fmt.Fprintf(tw, "invariant\tnot checked at the end\t%d checks under the lock passed\n", checks)
	default:
		fmt.Fprintf(tw, "invariant\tBROKEN\tsum %d, not %d, in %d of %d checks (first seen: %d)\n",
			d.l.lastBad.Load(), d.l.total, bad, checks, d.l.firstBad.Load())
	}
	tw.Flush()
}

// verdict prints the last line and returns the exit status.
func (d *demo) verdict() int {
	holding := len(d.killAt)
	rec := int(d.recoveries)
	var why []string
	if n := d.violations; n > 0 {
		why = append(why, fmt.Sprintf("the invariant broke (%d failed checks)", n))
	}
	if rec != holding {
		why = append(why, fmt.Sprintf("%d deaths while holding the lock but %d recoveries", holding, rec))
	}
	if d.misplaced > 0 {
		why = append(why, fmt.Sprintf("%d recoveries found another holder than the killed one", d.misplaced))
	}
	if len(d.failures) > 0 {
		why = append(why, d.failures[0])
	}
	if len(why) > 0 {
		fmt.Fprintf(d.stdout, "\nFAIL: %s\n", joinClauses(why))
		return exitFail
	}
	if holding == 0 {
		fmt.Fprintf(d.stdout, "\nok: the invariant held; no worker died holding the lock\n")
		return exitOK
	}
	fmt.Fprintf(d.stdout, "\nok: the invariant held and all %d deaths while holding the lock were recovered\n", holding)
	return exitOK
}

func joinClauses(s []string) string {
	out := s[0]
	for _, c := range s[1:] {
		out += "; " + c
	}
	return out
}
