//go:build linux

package event

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
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
		{"requester", stepSeenFree}, {"requester", stepTook}, {"requester", stepFilling}, {"requester", stepQueued},
		{"server", stepSeenHeld}, {"server", stepClaiming}, {"server", stepClaimed}, {"server", stepResponded},
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
		case stepSeenHeld, stepClaiming: // not claimed yet: another server takes it
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

// A requester killed after it cleared the servers' sleeper bit but before
// it woke them: the server stays asleep through the next requester's ring,
// and that requester's own nudge (request.go, "Lost rings") must wake it,
// long before its deadline.
func TestRequesterKilledRinging(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, "ring", Requests(2), MaxMessage(64))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := proctest.SharedFutexSleepers(os.Getpid())
	served := echo(ctx, c, nil)
	proctest.AwaitSleepers(t, base+1, os.Getpid()) // the server, asleep on qbell
	p := helper(t, dir, "ring", "req-die", "EVENT_ROLE=requester", fmt.Sprint("EVENT_STEP=", stepRung))
	p.Expect(fmt.Sprint("at ", stepRung))
	p.Kill()
	p.Wait()
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	start := time.Now()
	got, err := c.Request(rctx, []byte("after"))
	if err != nil || string(got) != "re:after" {
		t.Fatalf("Request after a requester died ringing = %q, %v (after %v); want re:after", got, err, time.Since(start))
	}
	t.Logf("answered %v after the ring was lost", time.Since(start))
	cancel()
	<-served
	if n := c.Stats().SlotsInUse(); n != 0 {
		t.Fatalf("%d slots in use at the end: %+v", n, c.Stats().Slots)
	}
}

// A requester killed after it freed its slot but before it woke the
// requesters waiting for one: the waiter, asleep on a word that is now
// free, must look at the slots again by itself (spaceRecheck), long
// before its deadline. (Without the recheck most runs fail; in some the
// kill's SIGCHLD, landing on the waiter's thread, interrupts its sleep
// and lets it find the slot early.)
func TestRequesterKilledFreeing(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, "free", Requests(1), MaxMessage(64))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waiting := make(chan struct{})
	served := echo(ctx, c, waiting) // answers the dying requester once the other one waits for its slot
	p := helper(t, dir, "free", "req-die", "EVENT_ROLE=requester", fmt.Sprint("EVENT_STEP=", stepFreed))
	for c.Stats().Slots[0].Phase != "claimed" { // the server holds it, awake, until waiting closes
		time.Sleep(time.Millisecond)
	}
	base := proctest.SharedFutexSleepers(os.Getpid())
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	type result struct {
		got []byte
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		got, err := c.Request(rctx, []byte("after"))
		done <- result{got, err, time.Now()}
	}()
	proctest.AwaitSleepers(t, base+1, os.Getpid()) // the second requester, asleep for a slot
	time.Sleep(20 * time.Millisecond)              // past the futex's value check, even on a loaded host
	close(waiting)
	p.Expect(fmt.Sprint("at ", stepFreed))
	p.Kill()
	killed := time.Now()
	res := <-done
	if res.err != nil || string(res.got) != "re:after" {
		t.Fatalf("Request waiting for a slot its holder freed and died = %q, %v (after %v); want re:after",
			res.got, res.err, res.at.Sub(killed))
	}
	t.Logf("answered %v after the freeing requester was killed", res.at.Sub(killed))
	cancel()
	<-served
}

// echo serves c until ctx ends, answering each request with "re:" and its
// data; if first is not nil it holds the first request until first is
// closed. The returned channel is closed when it stops.
func echo(ctx context.Context, c *Channel, first <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			r, err := c.NextRequest(ctx)
			if err != nil {
				return
			}
			if first != nil {
				<-first
				first = nil
			}
			r.Respond(append([]byte("re:"), r.Data()...)) // a dead requester's: ErrRequesterGone, ignored
		}
	}()
	return done
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

// The race of the report, first way: a requester takes the slot of a
// requester that died with its request queued, and before it has moved st
// on, a server sees rq held (by the new requester) and st Queued (the dead
// one's ticket). Before the fix the server claimed that stale ticket, its
// release then overwrote the new request's st, and the new requester got
// "slot taken from its requester" (ErrBadChannel) and leaked the slot. Now
// the dead request is withdrawn before rq is taken, and nothing is
// claimable in that window.
func TestRequestTakesDeadRequestersQueuedSlot(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, "stale", Requests(1), MaxMessage(64))
	ctx, cancel := context.WithTimeout(context.Background(), proctest.Watchdog)
	defer cancel()
	deadRequester(t, dir, "stale", c)
	stale := atomic.LoadUint32(&c.rslot(0).st)
	took, resume := make(chan struct{}), make(chan struct{})
	hookOnce(t, map[int][2]chan struct{}{stepTook: {took, resume}})
	done := requestAsync(ctx, c, "fresh")
	<-took // the new requester holds rq
	h, err := c.holder()
	if err != nil {
		t.Fatal(err)
	}
	r := c.claimOldest(h)
	if r != nil {
		t.Errorf("a server claimed the dead requester's request %q while the new requester held rq", r.Data())
	}
	close(resume)
	if r != nil {
		awaitMovedOn(c, stale)
		if err := r.Respond([]byte("stale")); !errors.Is(err, ErrRequesterGone) {
			t.Fatalf("Respond to the dead requester's request = %v, want ErrRequesterGone", err)
		}
	}
	serveUntilAnswered(t, ctx, c, done)
}

// The race of the report, second way: a server saw rq held by a live
// requester, which then died; a new requester finds rq and cl free; the
// server takes cl and claims the dead request; the new requester takes
// rq. Before the fix the new requester overwrote the claim's st and the
// server's release overwrote the new request's (ErrBadChannel, a leaked
// slot). Now the new requester finds cl held, gives rq back and waits;
// the server's Respond is ErrRequesterGone and frees the slot.
func TestRequestTakesSlotAServerIsClaiming(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, "claiming", Requests(1), MaxMessage(64))
	ctx, cancel := context.WithTimeout(context.Background(), proctest.Watchdog)
	defer cancel()
	dead := launch(t, dir, "claiming", "requester", "EVENT_N=1")
	dead.Expect("ready")
	for c.Stats().Slots[0].Phase != "queued" {
		time.Sleep(time.Millisecond)
	}
	seen, goS := make(chan struct{}), make(chan struct{})
	free, goX := make(chan struct{}), make(chan struct{})
	hookOnce(t, map[int][2]chan struct{}{stepSeenHeld: {seen, goS}, stepSeenFree: {free, goX}})
	claimed := make(chan *Request, 1)
	go func() {
		r, err := c.NextRequest(ctx)
		if err != nil {
			t.Error(err)
		}
		claimed <- r
	}()
	<-seen // the server saw rq held by the live requester
	dead.Kill()
	stale := atomic.LoadUint32(&c.rslot(0).st)
	done := requestAsync(ctx, c, "fresh")
	<-free // the new requester saw rq and cl free
	close(goS)
	r := <-claimed
	if r == nil {
		t.FailNow()
	}
	if !strings.HasSuffix(string(r.Data()), "-0") {
		t.Fatalf("the server claimed %q, want the dead requester's request", r.Data())
	}
	close(goX)
	awaitMovedOn(c, stale)
	if st := atomic.LoadUint32(&c.rslot(0).st); st != mk(pClaimed, ticketOf(stale)) {
		t.Errorf("a live server's claim was overwritten: st %s/%d, want claimed/%d",
			phaseNames[phaseOf(st)%len(phaseNames)], ticketOf(st), ticketOf(stale))
	}
	if err := r.Respond([]byte("stale")); !errors.Is(err, ErrRequesterGone) {
		t.Fatalf("Respond to the dead requester's request = %v, want ErrRequesterGone", err)
	}
	serveUntilAnswered(t, ctx, c, done)
}

// deadRequester leaves slot 0 of c Queued by a requester process that was
// then killed.
func deadRequester(t *testing.T, dir, name string, c *Channel) {
	t.Helper()
	p := launch(t, dir, name, "requester", "EVENT_N=1")
	p.Expect("ready")
	for c.Stats().Slots[0].Phase != "queued" {
		time.Sleep(time.Millisecond)
	}
	p.Kill()
}

// hookOnce sets requestHook to stop the first goroutine that reaches each
// step of stops: it closes the first channel and waits for the second.
func hookOnce(t *testing.T, stops map[int][2]chan struct{}) {
	var hit [stepResponded + 1]atomic.Bool
	requestHook = func(s int) {
		if ch, ok := stops[s]; ok && hit[s].CompareAndSwap(false, true) {
			close(ch[0])
			<-ch[1]
		}
	}
	t.Cleanup(func() { requestHook = nil })
}

type reqResult struct {
	got []byte
	err error
}

func requestAsync(ctx context.Context, c *Channel, msg string) chan reqResult {
	done := make(chan reqResult, 1)
	go func() {
		got, err := c.Request(ctx, []byte(msg))
		done <- reqResult{got, err}
	}()
	return done
}

// awaitMovedOn waits until the requester stopped in slot 0 has gone on:
// it moved st past the ticket of stale, or it gave rq back (it found cl
// held) and now waits for a slot (WAITERS on the free rq).
func awaitMovedOn(c *Channel, stale uint32) {
	rq, _ := c.words(0)
	for {
		r := atomic.LoadUint32(rq)
		if ticketOf(atomic.LoadUint32(&c.rslot(0).st)) != ticketOf(stale) ||
			r&futex.TIDMask == 0 && r&futex.Waiters != 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// serveUntilAnswered serves c until the request behind done is answered,
// which must be with "re:fresh", and then finds no slot in use.
func serveUntilAnswered(t *testing.T, ctx context.Context, c *Channel, done chan reqResult) {
	t.Helper()
	sctx, scancel := context.WithCancel(ctx)
	served := echo(sctx, c, nil)
	res := <-done
	scancel()
	<-served
	if res.err != nil || string(res.got) != "re:fresh" {
		t.Fatalf("the new requester got %q, %v; want re:fresh", res.got, res.err)
	}
	if n := c.Stats().SlotsInUse(); n != 0 {
		t.Fatalf("%d slots in use at the end: %+v", n, c.Stats().Slots)
	}
}
