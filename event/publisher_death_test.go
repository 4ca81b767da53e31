//go:build linux

package event

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/futexlab/robustlock/internal/proctest"
)

// A publisher killed at each step of Publish: no subscriber ever sees a
// partial message, a subscriber asleep meanwhile is woken by the next
// publish, the next publisher recovers the lock, and a whole but
// uncommitted message is committed (after step 4) or dropped (up to it).
func TestPublisherKilledAtEachStep(t *testing.T) {
	// good 5: nothing overwritten; good 8: the dying publisher's slot held
	// good0, which the slow subscriber must count as missed.
	for _, good := range []int{5, 8} {
		for stage := 1; stage <= 7; stage++ {
			t.Run(fmt.Sprintf("good%d/stage%d", good, stage), func(t *testing.T) { publisherKilledAt(t, good, stage, false) })
		}
	}
	// The subscriber asleep before the dying publisher starts: from stage
	// 7 on, the dead one has cleared the bell's sleeper bit, and only the
	// next publisher's recovery can still wake it.
	for stage := 1; stage <= 7; stage++ {
		t.Run(fmt.Sprintf("asleep/stage%d", stage), func(t *testing.T) { publisherKilledAt(t, 5, stage, true) })
	}
}

// publisherKilledAt: good messages, then a publisher killed at stage; if
// asleep, the subscriber has read the good ones and sleeps before that
// publisher goes on.
func publisherKilledAt(t *testing.T, good, stage int, asleep bool) {
	dir := t.TempDir()
	c := open(t, dir, "die", Capacity(8), MaxMessage(64))
	slow, _ := c.Subscribe() // reads only at the end
	fast, _ := c.Subscribe()
	env := []string{fmt.Sprint("EVENT_GOOD=", good), fmt.Sprint("EVENT_STAGE=", stage)}
	if asleep {
		env = append(env, "EVENT_WAITGO=1")
	}
	p := helper(t, dir, "die", "pub-die", env...)
	if asleep {
		p.Expect("waiting")
	} else {
		p.Expect(fmt.Sprint("at ", stage))
	}
	ctx := context.Background()
	want := []string{"after"}
	if good == 5 {
		for i := 0; i < good; i++ {
			if m, err := fast.Next(ctx); err != nil || string(m) != fmt.Sprint("good", i) {
				t.Fatalf("message %d: %q, %v", i, m, err)
			}
		}
		if stage >= 5 { // written whole: committed by the dead one or by recovery
			want = []string{"partial-partial-partial", "after"}
		}
	} else {
		fast, _ = c.Subscribe() // starts at head: 8, or 9 once the dead one stored it
		if stage == 5 {
			want = []string{"partial-partial-partial", "after"}
		}
	}
	base := proctest.SharedFutexSleepers(os.Getpid()) // threads of this process already asleep on shared words
	received := make(chan []string, 1)
	go func() {
		var got []string
		for {
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			m, err := fast.Next(wctx)
			cancel()
			if err != nil {
				got = append(got, "error: "+err.Error())
				break
			}
			got = append(got, string(m))
			if string(m) == "after" {
				break
			}
		}
		received <- got
	}()
	if asleep {
		proctest.AwaitSleepers(t, base+1, os.Getpid())
		p.Send("go")
		p.Expect(fmt.Sprint("at ", stage))
	}
	p.Kill()
	if err := c.Publish([]byte("after")); err != nil {
		t.Fatalf("Publish after the publisher died at stage %d: %v", stage, err)
	}
	if c.recoveries.Load() != 1 {
		t.Fatalf("the next Publish did not find the lock dead (%d recoveries)", c.recoveries.Load())
	}
	if got := <-received; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after a death at stage %d the subscriber got %q, want %q", stage, got, want)
	}
	// The slow one: received + missed == committed, nothing torn.
	var recv, missed uint64
	for slow.Seq() < c.Head() {
		m, err := slow.Next(ctx)
		var lap *LappedError
		switch {
		case errors.As(err, &lap):
			missed += lap.Missed
		case err != nil:
			t.Fatal(err)
		case string(m) != "after" && string(m) != "partial-partial-partial" && (len(m) != 5 || string(m[:4]) != "good"):
			t.Fatalf("torn message %q", m)
		default:
			recv++
		}
	}
	if recv+missed != c.Head() {
		t.Fatalf("slow subscriber: %d received + %d missed != %d committed", recv, missed, c.Head())
	}
	if good == 8 && missed == 0 {
		t.Fatalf("slow subscriber missed nothing though good0's slot was overwritten")
	}
}
