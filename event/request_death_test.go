//go:build linux

package event

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/futexlab/robustlock/internal/futex"
	"github.com/futexlab/robustlock/internal/proctest"
)

// A requester killed at each step of Request, and a server killed at each
// step of NextRequest and Respond: the other party gets what the contract
// says (ErrRequesterGone, ErrServerDied, or the response written before
// the death), no slot leaks, and the one slot serves again.
func TestRequestPartyKilledAtEachStep(t *testing.T) {
	for _, tc := range []struct {
		role string
		step int
	}{
		{"requester", stepTook}, {"requester", stepFilling}, {"requester", stepQueued},
		{"server", stepClaiming}, {"server", stepClaimed}, {"server", stepResponded},
	} {
		t.Run(fmt.Sprintf("%s/step%d", tc.role, tc.step), func(t *testing.T) { requestPartyKilledAt(t, tc.role, tc.step) })
	}
}

func requestPartyKilledAt(t *testing.T, role string, step int) {
	dir := t.TempDir()
	c := open(t, dir, "die", Requests(1), MaxMessage(64))
	ctx, cancel := context.WithTimeout(context.Background(), proctest.Watchdog)
	defer cancel()
	type result struct {
		got []byte
		err error
	}
	request := func(msg string) chan result {
		done := make(chan result, 1)
		go func() {
			got, err := c.Request(ctx, []byte(msg))
			done <- result{got, err}
		}()
		return done
	}
	// serve answers "after" and expects ErrRequesterGone for anything else
	// (the dead requester's request) until ctx ends.
	serve := func(ctx context.Context) {
		for {
			r, err := c.NextRequest(ctx)
			if err != nil {
				return
			}
			if string(r.Data()) == "after" {
				if err := r.Respond([]byte("re:after")); err != nil {
					t.Errorf("Respond to a live requester: %v", err)
				}
			} else if err := r.Respond([]byte("late")); !errors.Is(err, ErrRequesterGone) {
				t.Errorf("Respond to the killed requester's %q = %v, want ErrRequesterGone", r.Data(), err)
			}
		}
	}
	if role == "server" {
		done := request("q")
		p := helper(t, dir, "die", "req-die", "EVENT_ROLE=server", fmt.Sprint("EVENT_STEP=", step))
		p.Expect(fmt.Sprint("at ", step))
		p.Kill()
		var res result
		switch step {
		case stepClaiming: // not claimed yet: another server takes it
			sctx, scancel := context.WithCancel(ctx)
			go func() {
				r, err := c.NextRequest(sctx)
				if err == nil {
					r.Respond(append([]byte("re:"), r.Data()...))
				}
			}()
			res = <-done
			scancel()
			if res.err != nil || string(res.got) != "re:q" {
				t.Fatalf("server killed holding cl before its claim: Request = %q, %v; want re:q", res.got, res.err)
			}
		case stepClaimed:
			if res = <-done; !errors.Is(res.err, ErrServerDied) {
				t.Fatalf("server killed after its claim: Request = %q, %v; want ErrServerDied", res.got, res.err)
			}
		case stepResponded:
			if res = <-done; res.err != nil || string(res.got) != "re:q" {
				t.Fatalf("server killed after responding: Request = %q, %v; want re:q", res.got, res.err)
			}
		}
	} else {
		p := helper(t, dir, "die", "req-die", "EVENT_ROLE=requester", fmt.Sprint("EVENT_STEP=", step))
		p.Expect(fmt.Sprint("at ", step))
		p.Kill()
	}
	if n := c.Stats().SlotsInUse(); n != 0 {
		t.Fatalf("%d slots in use after the death: %+v", n, c.Stats().Slots)
	}
	// The slot serves again (after the dead requester's request, if queued).
	sctx, scancel := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() { serve(sctx); close(served) }()
	res := <-request("after")
	scancel()
	<-served
	if res.err != nil || string(res.got) != "re:after" {
		t.Fatalf("Request after the death = %q, %v; want re:after", res.got, res.err)
	}
	if n := c.Stats().SlotsInUse(); n != 0 {
		t.Fatalf("%d slots in use at the end: %+v", n, c.Stats().Slots)
	}
}

// reqDie is the helper of TestRequestPartyKilledAtEachStep: a requester
// (EVENT_ROLE=requester) or a server that stops at step EVENT_STEP and
// waits there to be killed.
func reqDie(c *Channel, say func(string, ...any)) int {
	step, _ := strconv.Atoi(os.Getenv("EVENT_STEP"))
	requestHook = func(s int) {
		if s == step {
			say("at %d", s)
			select {}
		}
	}
	ctx := context.Background()
	if os.Getenv("EVENT_ROLE") == "requester" {
		c.Request(ctx, []byte("dying"))
		return 1
	}
	for {
		r, err := c.NextRequest(ctx)
		if err != nil {
			return 1
		}
		r.Respond(append([]byte("re:"), r.Data()...))
	}
}

// The race of the report: a requester takes the slot of a requester that
// died with its request queued, and before it has moved st on, a server
// sees rq held (by the new requester) and st Queued (the dead one's
// ticket) and claims. The server must get the dead request alone
// (ErrRequesterGone from Respond), the new requester its own answer; with
// only rq taken before st was rewritten, the server's release overwrote
// the new request's st and the requester got "slot taken from its
// requester" (ErrBadChannel) and leaked the slot.
func TestRequestTakesDeadRequestersQueuedSlot(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, "stale", Requests(1), MaxMessage(64))
	ctx, cancel := context.WithTimeout(context.Background(), proctest.Watchdog)
	defer cancel()
	dead := helper(t, dir, "stale", "requester", "EVENT_N=1")
	dead.Expect("ready")
	for c.Stats().Slots[0].Phase != "queued" {
		time.Sleep(time.Millisecond)
	}
	dead.Kill()
	stale := atomic.LoadUint32(&c.rslot(0).st)

	took, resume := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	requestHook = func(s int) {
		if s == stepTook && once.CompareAndSwap(false, true) {
			close(took)
			<-resume
		}
	}
	defer func() { requestHook = nil }()
	type result struct {
		got []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := c.Request(ctx, []byte("fresh"))
		done <- result{got, err}
	}()
	<-took // the new requester holds rq; st is still the dead one's Queued
	r, err := c.NextRequest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Data()) == "fresh" {
		t.Fatal("NextRequest took the new request before it was queued")
	}
	close(resume)
	// Let the requester go on until it either gave rq back (it found cl
	// held) or moved st past the stale ticket.
	rq, _ := c.words(0)
	for atomic.LoadUint32(rq)&futex.TIDMask != 0 && ticketOf(atomic.LoadUint32(&c.rslot(0).st)) == ticketOf(stale) {
		time.Sleep(time.Millisecond)
	}
	if err := r.Respond([]byte("stale")); !errors.Is(err, ErrRequesterGone) {
		t.Fatalf("Respond to the dead requester's request = %v, want ErrRequesterGone", err)
	}
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	go func() {
		for {
			r, err := c.NextRequest(sctx)
			if err != nil {
				return
			}
			r.Respond(append([]byte("re:"), r.Data()...))
		}
	}()
	res := <-done
	if res.err != nil || string(res.got) != "re:fresh" {
		t.Fatalf("the new requester got %q, %v; want re:fresh", res.got, res.err)
	}
	scancel()
	for i := 0; c.Stats().SlotsInUse() != 0; i++ {
		if i > 1000 {
			t.Fatalf("slot still in use: %+v", c.Stats().Slots)
		}
		time.Sleep(time.Millisecond)
	}
}
