//go:build linux

package event

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/futexlab/robustlock/internal/proctest"
)

// Publishers SIGKILLed at random moments while four subscriber processes
// read (and a fifth is killed and restarted throughout): every subscriber
// gets each committed message once, in order, whole (CRC), or counts it
// as missed in a lap; received + missed is exactly what was committed
// while it was subscribed; a subscriber that never lapped saw every
// publisher's counter contiguous.
func TestChaosPublishersKilled(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, "chaos", Capacity(1<<14), MaxMessage(128))
	var subs []*proctest.Proc
	for i := 0; i < 4; i++ {
		p := helper(t, dir, "chaos", "sub")
		p.Expect("ready")
		subs = append(subs, p)
	}
	var mu sync.Mutex
	recovered := 0
	npub := 0
	startPub := func() *proctest.Proc {
		npub++
		var extra []string
		if npub%3 == 0 { // one in three publishes flat out: kills land inside Publish
			extra = append(extra, "EVENT_TIGHT=1")
		}
		p := launch(t, dir, "chaos", "pub", extra...)
		p.Expect("ready")
		go func() {
			for l := range p.Lines() {
				if l == "recovered" {
					mu.Lock()
					recovered++
					mu.Unlock()
				}
			}
		}()
		return p
	}
	pubs := []*proctest.Proc{startPub(), startPub(), startPub()}
	victim := launch(t, dir, "chaos", "sub")
	r := rand.New(rand.NewPCG(1, 2))
	kills := 0
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) || kills < 30 {
		time.Sleep(time.Duration(r.IntN(40_000)) * time.Microsecond)
		i := r.IntN(len(pubs))
		pubs[i].Kill()
		kills++
		pubs[i] = startPub()
		if kills%5 == 0 {
			victim.Kill()
			victim = launch(t, dir, "chaos", "sub")
		}
	}
	for _, p := range pubs {
		p.Kill()
	}
	victim.Kill()
	committed := c.Head()
	if err := c.Publish([]byte("STOP")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	t.Logf("%d publisher kills, %d found the lock dead (recovered), %d messages committed", kills, recovered, committed)
	mu.Unlock()
	for i, p := range subs {
		f := fields(t, p.Next(), "result", 6)
		recv, missed, badn, start, end, pubsSeen := f[0], f[1], f[2], f[3], f[4], f[5]
		t.Logf("subscriber %d: received %d, missed %d, from %d to %d, %d publishers", i, recv, missed, start, end, pubsSeen)
		if badn != 0 {
			t.Errorf("subscriber %d: %d torn, duplicate or out-of-order messages; stderr: %s", i, badn, p.Stderr())
		}
		if recv+missed != end-start {
			t.Errorf("subscriber %d: received %d + missed %d != %d committed while subscribed", i, recv, missed, end-start)
		}
		if end != committed {
			t.Errorf("subscriber %d: last message %d, but %d were committed before STOP", i, end, committed)
		}
		if p.Wait() != nil {
			t.Errorf("subscriber %d failed: %s", i, p.Stderr())
		}
	}
}

// A server killed while holding a request: the requester gets
// ErrServerDied from the kernel's death wake, not from its timeout.
func TestServerDiesHoldingRequest(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, "srv", Requests(4), MaxMessage(64))
	srv := helper(t, dir, "srv", "server", "EVENT_HOLD=1")
	srv.Expect("ready")
	type res struct {
		err error
		at  time.Time
	}
	done := make(chan res, 1)
	go func() {
		_, err := c.Request(context.Background(), []byte("hello"))
		done <- res{err, time.Now()}
	}()
	srv.Expect("took hello")
	killed := time.Now()
	srv.Kill()
	select {
	case r := <-done:
		if !errors.Is(r.err, ErrServerDied) {
			t.Fatalf("Request = %v, want ErrServerDied", r.err)
		}
		t.Logf("ErrServerDied %v after SIGKILL returned (kill and reap included)", r.at.Sub(killed))
	case <-time.After(proctest.Watchdog):
		t.Fatal("Request still waiting after its server was killed")
	}
	if n := c.Stats().SlotsInUse(); n != 0 {
		t.Fatalf("%d slots in use after ErrServerDied: %+v", n, c.Stats().Slots)
	}
}

// A requester killed while waiting: Respond says ErrRequesterGone and the
// slot is free.
func TestRequesterKilledWaiting(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, "req", Requests(4), MaxMessage(64))
	rq := helper(t, dir, "req", "requester", "EVENT_N=1")
	rq.Expect("ready")
	r, err := c.NextRequest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.SlotsInUse() != 1 {
		t.Fatalf("a claimed request shows %d slots in use", st.SlotsInUse())
	}
	rq.Kill()
	if err := r.Respond([]byte("too late")); !errors.Is(err, ErrRequesterGone) {
		t.Fatalf("Respond to a killed requester = %v, want ErrRequesterGone", err)
	}
	if st := c.Stats(); st.SlotsInUse() != 0 {
		t.Fatalf("slots in use after ErrRequesterGone: %+v", st.Slots)
	}
}

// 10^4 requests through server and requester processes that are killed at
// random: every answer is right, and when everyone is dead no slot is
// held, and every slot can be taken again.
func TestRequestsUnderKills(t *testing.T) {
	total := 10_000
	if testing.Short() {
		total = 1000
	}
	dir := t.TempDir()
	const slots = 8
	c := open(t, dir, "rk", Requests(slots), MaxMessage(64))
	var ok, died, timeouts, wrong atomic.Int64
	var procs sync.WaitGroup
	watch := func(p *proctest.Proc) {
		procs.Add(1)
		go func() {
			defer procs.Done()
			for l := range p.Lines() {
				switch {
				case l == "ok":
					ok.Add(1)
				case l == "died":
					died.Add(1)
				case l == "timeout":
					timeouts.Add(1)
				case l == "ready":
				default:
					wrong.Add(1)
					t.Errorf("%v: %s", p, l)
				}
			}
		}()
	}
	start := func(kind string, extra ...string) *proctest.Proc {
		p := launch(t, dir, "rk", kind, extra...)
		watch(p)
		return p
	}
	servers := []*proctest.Proc{start("server"), start("server")}
	reqs := []*proctest.Proc{start("requester"), start("requester"), start("requester")}
	r := rand.New(rand.NewPCG(3, 4))
	kills := 0
	for ok.Load() < int64(total) {
		time.Sleep(time.Duration(5+r.IntN(30)) * time.Millisecond)
		if r.IntN(2) == 0 {
			i := r.IntN(len(servers))
			servers[i].Kill()
			servers[i] = start("server")
		} else {
			i := r.IntN(len(reqs))
			reqs[i].Kill()
			reqs[i] = start("requester")
		}
		kills++
		if kills > 100_000 {
			t.Fatal("no progress")
		}
	}
	for _, p := range append(servers, reqs...) {
		p.Kill()
	}
	procs.Wait()
	t.Logf("%d answered, %d ErrServerDied, %d timeouts, %d kills", ok.Load(), died.Load(), timeouts.Load(), kills)
	if wrong.Load() != 0 {
		t.Fatalf("%d wrong answers", wrong.Load())
	}
	st := c.Stats()
	if n := st.SlotsInUse(); n != 0 {
		t.Fatalf("%d slots leaked with every process dead: %+v", n, st.Slots)
	}
	// Every slot can be taken again: fill the whole queue at once.
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), proctest.Watchdog)
	defer cancel()
	for i := 0; i < slots; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Request(ctx, []byte("again")); err != nil {
				t.Errorf("Request after the chaos: %v", err)
			}
		}()
	}
	var taken []*Request
	for i := 0; i < slots; i++ {
		req, err := c.NextRequest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		taken = append(taken, req)
	}
	if n := c.Stats().SlotsInUse(); n != slots {
		t.Errorf("after taking %d requests, %d slots in use", slots, n)
	}
	for _, req := range taken {
		if err := req.Respond([]byte("re:again")); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	if n := c.Stats().SlotsInUse(); n != 0 {
		t.Errorf("%d slots in use at the end", n)
	}
}

// 10,000 goroutines waiting in Next in one process hold a handful of
// threads, and all get the message.
func TestManyGoroutineSubscribers(t *testing.T) {
	const n = 10_000
	dir := t.TempDir()
	c := open(t, dir, "many", Capacity(16), MaxMessage(64))
	var waiting, got atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		s, _ := c.Subscribe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			waiting.Add(1)
			m, err := s.Next(context.Background())
			if err == nil && string(m) == "wake" {
				got.Add(1)
			}
		}()
	}
	for waiting.Load() < n {
		time.Sleep(time.Millisecond)
	}
	proctest.AwaitSleepers(t, 1, os.Getpid())
	time.Sleep(100 * time.Millisecond) // let stragglers park
	threads := threadCount(t)
	limit := 64 + runtime.GOMAXPROCS(0)
	t.Logf("%d goroutines waiting: %d threads, %d asleep on shared futexes", n, threads, proctest.SharedFutexSleepers(os.Getpid()))
	if threads >= limit {
		t.Fatalf("%d waiting goroutines hold %d threads, want < %d", n, threads, limit)
	}
	pub := helper(t, dir, "many", "publish-one")
	pub.Expect("done")
	wg.Wait()
	if got.Load() != n {
		t.Fatalf("%d of %d subscribers got the message", got.Load(), n)
	}
}

func threadCount(t testing.TB) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Fatal("no Threads: line")
	return 0
}

// Thousands of goroutines in Request (most waiting for one of 4 slots)
// and in NextRequest hold a handful of threads, and every request is
// answered once.
func TestManyGoroutineRequestersAndServers(t *testing.T) {
	const n = 2000
	dir := t.TempDir()
	c := open(t, dir, "manyrr", Requests(4), MaxMessage(64))
	srv := open(t, dir, "manyrr") // the servers' own Channel: another holder
	ctx := context.Background()
	var wg sync.WaitGroup
	var answered, wrong atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := strconv.Itoa(i)
			got, err := c.Request(ctx, []byte(msg))
			if err != nil || string(got) != "re:"+msg {
				wrong.Add(1)
				return
			}
			answered.Add(1)
		}()
	}
	for c.Stats().SlotsInUse() < 4 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let the rest park waiting for a slot
	threads := threadCount(t)
	limit := 64 + runtime.GOMAXPROCS(0)
	t.Logf("%d requesters, 4 slots: %d threads", n, threads)
	if threads >= limit {
		t.Fatalf("%d waiting requesters hold %d threads, want < %d", n, threads, limit)
	}
	// Now 1000 servers, most of them waiting for work.
	gate := make(chan struct{})
	var served atomic.Int64
	var swg sync.WaitGroup
	for i := 0; i < 1000; i++ {
		swg.Add(1)
		go func() {
			defer swg.Done()
			<-gate
			for {
				r, err := srv.NextRequest(ctx)
				if err != nil {
					return
				}
				served.Add(1)
				r.Respond(append([]byte("re:"), r.Data()...))
			}
		}()
	}
	close(gate)
	wg.Wait()
	if answered.Load() != n || wrong.Load() != 0 {
		t.Fatalf("%d answered, %d wrong, of %d", answered.Load(), wrong.Load(), n)
	}
	time.Sleep(100 * time.Millisecond)
	threads = threadCount(t)
	t.Logf("1000 servers waiting: %d threads", threads)
	if threads >= limit {
		t.Fatalf("1000 waiting servers hold %d threads, want < %d", threads, limit)
	}
	if served.Load() != n {
		t.Fatalf("served %d, want %d", served.Load(), n)
	}
	srv.Close()
	swg.Wait()
}
