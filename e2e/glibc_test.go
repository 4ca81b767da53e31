//go:build linux

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/segment"

	"github.com/futexlab/robustlock/internal/proctest"
)

// A shared mutex as a test sees it: the target peers open, and the same
// mutex and counter mapped in the test process.
type fixture struct {
	tgt     target
	m       *robustlock.Mutex
	counter *int64
	mem     []byte // the mutex's bytes
}

var uniq atomic.Int64

// shmName returns a segment name unique to this test process, removed
// from /dev/shm when the test ends.
func shmName(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat(segment.DefaultDir); err != nil || !fi.IsDir() {
		t.Skipf("no %s: %v", segment.DefaultDir, err)
	}
	name := fmt.Sprintf("robustlock-e2e-%d-%d", os.Getpid(), uniq.Add(1))
	t.Cleanup(func() { segment.Remove(name) })
	return name
}

func segFixture(t testing.TB, seg *segment.Segment, tgt target) fixture {
	t.Cleanup(func() { seg.Close() })
	return fixture{tgt: tgt, m: seg.Mutex(), counter: (*int64)(unsafe.Pointer(&seg.Data()[0])),
		mem: unsafe.Slice((*byte)(unsafe.Pointer(seg.Mutex())), robustlock.Size)}
}

// setups are the ways a C and a Go process come to share one mutex.
var setups = []struct {
	name string
	make func(t *testing.T) fixture
}{
	{"segment-in-dir", func(t *testing.T) fixture {
		dir := t.TempDir()
		seg, err := segment.Open("e2e", segment.Dir(dir), segment.Size(64), segment.Mutexes(1), segment.CreateOnly())
		if err != nil {
			t.Fatal(err)
		}
		return segFixture(t, seg, target{"seg", filepath.Join(dir, "e2e"), "0"})
	}},
	{"segment-shm_open", func(t *testing.T) fixture {
		name := shmName(t)
		seg, err := segment.Open(name, segment.Size(64), segment.Mutexes(1), segment.CreateOnly())
		if err != nil {
			t.Fatal(err)
		}
		return segFixture(t, seg, target{"shm", "/" + name, "0"})
	}},
	{"file-init-by-C", func(t *testing.T) fixture {
		f := rawFixture(t)
		c := startPeer(t, "c", f.tgt)
		c.Must("init robust", "ok")
		c.Quit("exit")
		return f
	}},
	{"file-init-by-Go", func(t *testing.T) fixture {
		f := rawFixture(t)
		f.m.Init()
		return f
	}},
}

// rawFixture is a zeroed 4 KiB file with room for a mutex at 0 and its
// counter at 64; nobody has initialised the mutex.
func rawFixture(t testing.TB) fixture {
	t.Helper()
	path, mem := proctest.SharedFile(t, "mutex", 4096)
	m, err := robustlock.At(mem, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{tgt: target{"raw", path, "0"}, m: m, counter: (*int64)(unsafe.Pointer(&mem[64])), mem: mem[:robustlock.Size]}
}

// localLock locks f.m on a new goroutine of the test process and sends
// the result; after ErrOwnerDied it marks the mutex consistent if mark is
// set, and it unlocks whenever it got the lock.
func localLock(m *robustlock.Mutex, mark bool) <-chan error {
	ch := make(chan error, 1)
	go func() {
		err := m.Lock()
		if errors.Is(err, robustlock.ErrOwnerDied) && mark {
			if e := m.MarkConsistent(); e != nil {
				ch <- fmt.Errorf("MarkConsistent: %w", e)
				m.Unlock()
				return
			}
		}
		if err == nil || errors.Is(err, robustlock.ErrOwnerDied) {
			// Unlocking an owner death not marked consistent reports that
			// the mutex is now not recoverable; anything else must be nil.
			if e := m.Unlock(); e != nil && !(e == robustlock.ErrUnlockedInconsistent && err != nil && !mark) {
				ch <- fmt.Errorf("Unlock: %w", e)
				return
			}
		}
		ch <- err
	}()
	return ch
}

// result waits for a localLock result.
func result(t testing.TB, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(watchdog):
		t.Fatalf("an in-process locker got no answer within %v: hung", watchdog)
	}
	return nil
}

// A sleeper is a peer or an in-process goroutine waiting for the lock.
type answer struct {
	p   *proc // nil: the in-process locker
	msg string
}

// collect gathers one answer from each peer that was sent a lock command
// and from each local channel, in the order they come. A peer that
// answers EOWNERDEAD is told to mark the mutex consistent if mark is set;
// every peer that got the lock is told to unlock, so the next one can
// proceed.
func collect(t *testing.T, mark bool, peers []*proc, locals ...<-chan error) []string {
	t.Helper()
	merged := make(chan answer, len(peers)+len(locals))
	for _, p := range peers {
		go func(p *proc) {
			select {
			case l, ok := <-p.Lines():
				if !ok {
					l = "exited"
				}
				merged <- answer{p, l}
			case <-time.After(watchdog):
				merged <- answer{p, "hung"}
			}
		}(p)
	}
	for _, ch := range locals {
		go func(ch <-chan error) {
			select {
			case err := <-ch:
				merged <- answer{nil, errName(err)}
			case <-time.After(watchdog):
				merged <- answer{nil, "hung"}
			}
		}(ch)
	}
	var got []string
	for range len(peers) + len(locals) {
		a := <-merged
		who := "test process"
		if a.p != nil {
			who = a.p.String()
		}
		got = append(got, a.msg)
		switch a.msg {
		case "hung", "exited":
			t.Fatalf("%s did not get the lock or an error within %v (answers so far %v)", who, watchdog, got)
		case "EOWNERDEAD":
			if a.p != nil {
				if mark {
					a.p.Must("consistent", "ok")
				}
				a.p.Must("unlock", unlockAnswer(a.p, mark))
			}
		case "ok":
			if a.p != nil {
				a.p.Must("unlock", "ok")
			}
		}
		t.Logf("%s: %s", who, a.msg)
	}
	return got
}

func count(answers []string, want string) int {
	n := 0
	for _, a := range answers {
		if a == want {
			n++
		}
	}
	return n
}

// TestGlibcHeader: a C program reads a segment's header with the struct
// of segment/doc.go, checks it as the doc says a C peer must, and sees the
// same values Go does, for a segment found by path and one found with
// shm_open, and for a mutex other than the first.
func TestGlibcHeader(t *testing.T) {
	dir := t.TempDir()
	name := shmName(t)
	for _, c := range []struct {
		where string
		open  func() (*segment.Segment, error)
		tgt   func(i int) target
	}{
		{"dir", func() (*segment.Segment, error) {
			return segment.Open("hdr", segment.Dir(dir), segment.Size(1000), segment.Mutexes(3))
		}, func(i int) target { return target{"seg", filepath.Join(dir, "hdr"), strconv.Itoa(i)} }},
		{"shm", func() (*segment.Segment, error) {
			return segment.Open(name, segment.Size(8), segment.Mutexes(1))
		}, func(i int) target { return target{"shm", "/" + name, strconv.Itoa(i)} }},
	} {
		t.Run(c.where, func(t *testing.T) {
			seg, err := c.open()
			if err != nil {
				t.Fatal(err)
			}
			defer seg.Close()
			h := seg.Header()
			for i := 0; i < seg.NumMutexes(); i++ {
				p := startPeer(t, "c", c.tgt(i))
				got := map[string]string{}
				for _, kv := range strings.Fields(p.Do("header")) {
					k, v, _ := strings.Cut(kv, "=")
					got[k] = v
				}
				want := map[string]string{
					"version": "1", "word_size": "8", "mutex_size": strconv.Itoa(robustlock.Size),
					"header_size": strconv.Itoa(segment.HeaderSize), "mutex_count": strconv.Itoa(h.MutexCount),
					"mutex_stride": strconv.Itoa(h.MutexStride), "mutex_offset": fmt.Sprint(h.MutexOffset),
					"data_offset": fmt.Sprint(h.DataOffset), "data_size": fmt.Sprint(h.DataSize),
					"total_size": fmt.Sprint(h.TotalSize), "creator_pid": strconv.Itoa(h.CreatorPID),
					"created_ns": fmt.Sprint(h.Created.UnixNano()), "pidns_ino": fmt.Sprint(h.PIDNamespace),
					"sizeof_mutex": strconv.Itoa(robustlock.Size), "mutex_at": fmt.Sprint(h.MutexOff(i)),
				}
				for k, v := range want {
					if got[k] != v {
						t.Errorf("mutex %d: C reads %s=%q, Go says %q", i, k, got[k], v)
					}
				}
				if h.CreatorPID != os.Getpid() || h.PIDNamespace == 0 {
					t.Errorf("header records creator %d in pid:[%d]; this process is %d", h.CreatorPID, h.PIDNamespace, os.Getpid())
				}
				// The mutex C finds is the one Go uses.
				gm, _ := seg.MutexN(i)
				if err := gm.Lock(); err != nil {
					t.Fatal(err)
				}
				p.Must("trylock", "EBUSY")
				gm.Unlock()
				p.Must("trylock", "ok")
				p.Must("unlock", "ok")
			}
		})
	}
}

// TestGlibcInitSameBytes: pthread_mutex_init with the robust and
// process-shared attributes and Mutex.Init write the same 40 (or 48)
// bytes, and a mutex C initialised as a kind robustlock does not run is
// refused from Go without being touched.
func TestGlibcInitSameBytes(t *testing.T) {
	f := rawFixture(t)
	c := startPeer(t, "c", f.tgt)
	for i := range f.mem {
		f.mem[i] = 0xa5 // garbage: both inits must overwrite all of it
	}
	c.Must("init robust", "ok")
	fromC := bytes.Clone(f.mem)
	for i := range f.mem {
		f.mem[i] = 0xa5
	}
	f.m.Init()
	if !bytes.Equal(fromC, f.mem) {
		t.Fatalf("pthread_mutex_init (robust, pshared):\n  % x\nMutex.Init:\n  % x", fromC, f.mem)
	}
	if k := f.m.State().Kind; k != robustlock.KindRobustNormal {
		t.Errorf("kind %d, want %d", k, robustlock.KindRobustNormal)
	}

	// Kinds: normal set explicitly (glibc then adds its no-elision bit to
	// __kind) and errorcheck robust run; the others are refused untouched.
	for _, kind := range []string{"normal", "errorcheck", "recursive", "plain", "pi"} {
		c.Must("init "+kind, "ok")
		before := bytes.Clone(f.mem)
		err := f.m.TryLock()
		if kind == "normal" || kind == "errorcheck" {
			if err != nil {
				t.Errorf("C-initialised %s mutex: TryLock = %v", kind, err)
				continue
			}
			c.Must("trylock", "EBUSY")
			if err := f.m.Lock(); !errors.Is(err, robustlock.ErrDeadlock) {
				t.Errorf("relock of a %s mutex: %v", kind, err)
			}
			f.m.Unlock()
			c.Must("lock", "ok")
			c.Must("unlock", "ok")
			continue
		}
		lerr := f.m.Lock()
		cerr := f.m.LockContext(context.Background())
		for _, e := range []error{err, lerr, cerr} {
			if !errors.Is(e, robustlock.ErrKind) {
				t.Errorf("C-initialised %s mutex (kind %d): got %v, want ErrKind", kind, f.m.State().Kind, e)
				if e == nil {
					f.m.Unlock()
				}
			}
		}
		if !bytes.Equal(before, f.mem) {
			t.Errorf("refusing a %s mutex changed it:\n  % x\n  % x", kind, before, f.mem)
		}
	}
}

// TestGlibcPeers runs every scenario on every way of sharing the mutex.
func TestGlibcPeers(t *testing.T) {
	cProgram(t, "peer") // skip early without gcc
	scenarios := []struct {
		name string
		run  func(t *testing.T, f fixture)
	}{
		{"handoff", scenarioHandoff},
		{"C-killed-Go-recovers", func(t *testing.T, f fixture) { scenarioDeath(t, f, "c", "die") }},
		{"Go-killed-C-recovers", func(t *testing.T, f fixture) { scenarioDeath(t, f, "go", "die") }},
		{"C-execs-Go-recovers", func(t *testing.T, f fixture) { scenarioDeath(t, f, "c", "exec") }},
		{"Go-execs-C-recovers", func(t *testing.T, f fixture) { scenarioDeath(t, f, "go", "exec") }},
		{"C-thread-exits-Go-recovers", func(t *testing.T, f fixture) { scenarioDeath(t, f, "c", "threaddie") }},
		{"goroutine-exits-C-recovers", func(t *testing.T, f fixture) { scenarioDeath(t, f, "go", "threaddie") }},
		{"C-makes-not-recoverable", scenarioNotRecoverableByC},
		{"Go-makes-not-recoverable", scenarioNotRecoverableByGo},
		{"counting", scenarioCounting},
	}
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) { sc.run(t, s.make(t)) })
			}
		})
	}
}

// scenarioHandoff: plain mutual exclusion between the two worlds: each
// sees the other's hold (EBUSY, timeouts) and is woken by its unlock.
func scenarioHandoff(t *testing.T, f fixture) {
	c := startPeer(t, "c", f.tgt)
	g := startPeer(t, "go", f.tgt)
	c.Must("lock", "ok")
	if err := f.m.TryLock(); !errors.Is(err, robustlock.ErrBusy) {
		t.Fatalf("Go TryLock while C holds: %v", err)
	}
	g.Must("timedlock 20", "ETIMEDOUT")
	if st := f.m.State(); st.Owner != atoi(c.Do("tid")) {
		t.Fatalf("state %v: owner is not the C peer's thread", st)
	}
	local := localLock(f.m, false)
	g.Send("lock")
	proctest.AwaitSleepers(t, 2, os.Getpid(), g.Pid())
	c.Must("unlock", "ok")
	ans := collect(t, false, []*proc{g}, local)
	if count(ans, "ok") != 2 {
		t.Fatalf("answers %v, want both ok", ans)
	}
	g.Must("lock", "ok")
	c.Must("trylock", "EBUSY")
	c.Must("timedlock 20", "ETIMEDOUT")
	c.Send("lock")
	proctest.AwaitSleepers(t, 1, c.Pid())
	g.Must("unlock", "ok")
	c.Expect("ok")
	c.Must("unlock", "ok")
	if st := f.m.State(); st.Owner != 0 || st.Waiters || st.OwnerDied || st.Inconsistent {
		t.Fatalf("state after the handoffs: %v", st)
	}
}

// scenarioDeath: a holder of one kind dies holding the lock (SIGKILL,
// exec, or its locking thread exits) while lockers of the other kind
// sleep; exactly one of them is told EOWNERDEAD, repairs, and everyone
// else then gets the lock normally.
func scenarioDeath(t *testing.T, f fixture, holderKind, death string) {
	holder := startPeer(t, holderKind, f.tgt)
	other := map[string]string{"c": "go", "go": "c"}[holderKind]
	var sleepers []*proc
	var locals []<-chan error
	pids := []int{}
	if death == "threaddie" {
		// The thread locks and ends at once; the process lives on.
		holder.Must("threaddie", "ok")
		if st := f.m.State(); !st.OwnerDied {
			t.Fatalf("after the locking thread exited: %v, want owner died", st)
		}
	} else {
		holder.Must("lock", "ok")
	}
	for i := 0; i < 2; i++ {
		p := startPeer(t, other, f.tgt)
		p.Send("lock")
		sleepers = append(sleepers, p)
		pids = append(pids, p.Pid())
	}
	kernel := len(sleepers)
	if other == "go" {
		// Three goroutines of this process: the room's delegate sleeps in
		// the kernel beside the C peers, the other two are parked in Go.
		for range 3 {
			locals = append(locals, localLock(f.m, true))
		}
		pids = append(pids, os.Getpid())
		kernel++
	}
	if death != "threaddie" {
		proctest.AwaitSleepers(t, kernel, pids...)
		if other == "go" {
			awaitParked(t, len(locals)-1)
		}
		holder.Send(death)
		if err := holder.Wait(); death == "die" && err == nil {
			t.Fatalf("holder exited normally after die")
		} else if death == "exec" && err != nil {
			t.Fatalf("holder's exec of /bin/true: %v; stderr %s", err, holder.Stderr())
		}
	}
	ans := collect(t, true, sleepers, locals...)
	if count(ans, "EOWNERDEAD") != 1 || count(ans, "ok") != len(ans)-1 {
		t.Fatalf("answers %v: want exactly one EOWNERDEAD and the rest ok", ans)
	}
	if death == "threaddie" {
		holder.Must("lock", "ok") // the process whose thread died is a peer as before
		holder.Must("unlock", "ok")
	}
	if st := f.m.State(); st.Owner != 0 || st.OwnerDied || st.Inconsistent || st.NotRecoverable {
		t.Fatalf("state after recovery: %v", st)
	}
}

// scenarioNotRecoverableByC: a C process recovers a Go holder's death and
// unlocks without pthread_mutex_consistent. Go sleepers in two processes
// all learn the mutex is not recoverable, and so does every later lock
// from Go or C; none of those attempts changes the mutex.
func scenarioNotRecoverableByC(t *testing.T, f fixture) {
	h := startPeer(t, "go", f.tgt)
	h.Must("lock", "ok")
	h.Send("die")
	h.Wait()
	c := startPeer(t, "c", f.tgt)
	c.Must("lock", "EOWNERDEAD")
	var sleepers []*proc
	for i := 0; i < 2; i++ {
		g := startPeer(t, "go", f.tgt)
		g.Send("lock")
		sleepers = append(sleepers, g)
	}
	g3 := startPeer(t, "go", f.tgt)
	g3.Send("timedlock 60000")
	sleepers = append(sleepers, g3)
	local := localLock(f.m, false)
	proctest.AwaitSleepers(t, 4, os.Getpid(), sleepers[0].Pid(), sleepers[1].Pid(), g3.Pid())
	c.Must("unlock", "ok") // no consistent: not recoverable from now on
	ans := collect(t, false, sleepers, local)
	if n := count(ans, "ENOTRECOVERABLE"); n != len(ans) {
		t.Fatalf("Go sleepers answered %v, want all ENOTRECOVERABLE", ans)
	}
	laterLockers(t, f, "ENOTRECOVERABLE")
}

// scenarioNotRecoverableByGo: the mirror: a Go process recovers a C
// holder's death and unlocks without MarkConsistent; a C sleeper, a Go
// sleeper and every later locker learn it. glibc's own trylock bug then
// leaves the word holding a C thread's TID, and Go lockers still answer at
// once. Init, from Go, makes the mutex usable again for C.
func scenarioNotRecoverableByGo(t *testing.T, f fixture) {
	h := startPeer(t, "c", f.tgt)
	h.Must("lock", "ok")
	h.Send("die")
	h.Wait()
	g := startPeer(t, "go", f.tgt)
	g.Must("lock", "EOWNERDEAD")
	// One C sleeper: with two, glibc can lose a wake-up among them
	// (TestGlibcLostWakeup), which no Go code can prevent.
	c := startPeer(t, "c", f.tgt)
	c.Send("lock")
	g2 := startPeer(t, "go", f.tgt)
	g2.Send("lock")
	local := localLock(f.m, false)
	proctest.AwaitSleepers(t, 3, os.Getpid(), c.Pid(), g2.Pid())
	g.Must("unlock", unlockAnswer(g, false))
	ans := collect(t, false, []*proc{c, g2}, local)
	if n := count(ans, "ENOTRECOVERABLE"); n != len(ans) {
		t.Fatalf("sleepers answered %v, want all ENOTRECOVERABLE", ans)
	}
	laterLockers(t, f, "ENOTRECOVERABLE")

	// glibc 2.36's trylock on a not-recoverable mutex leaves its own TID
	// in the word. Go must not wait behind that.
	c2 := startPeer(t, "c", f.tgt)
	c2.Must("trylock", "ENOTRECOVERABLE")
	if st := f.m.State(); st.Owner != 0 {
		t.Logf("glibc's trylock left the word held by tid %d (its known bug); Go must not block on it", st.Owner)
	}
	start := time.Now()
	if err := result(t, localLock(f.m, false)); !errors.Is(err, robustlock.ErrNotRecoverable) {
		t.Fatalf("Go Lock after glibc's trylock: %v", err)
	}
	g2.Must("lock", "ENOTRECOVERABLE")
	g2.Must("trylock", "ENOTRECOVERABLE")
	g2.Must("timedlock 5000", "ENOTRECOVERABLE")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Go lockers took %v to report not recoverable", d)
	}
	c2.Quit("exit")

	// The way back: Init, once nobody uses the mutex.
	f.m.Init()
	c3 := startPeer(t, "c", f.tgt)
	c3.Must("lock", "ok")
	c3.Must("unlock", "ok")
	g2.Must("lock", "ok")
	g2.Must("unlock", "ok")
}

// laterLockers: every kind of lock, from Go and from C, answers want and
// leaves the mutex's bytes as they were.
func laterLockers(t *testing.T, f fixture, want string) {
	t.Helper()
	before := bytes.Clone(f.mem)
	g := startPeer(t, "go", f.tgt)
	for _, cmd := range []string{"lock", "trylock", "timedlock 1000"} {
		g.Must(cmd, want)
	}
	if err := result(t, localLock(f.m, false)); errName(err) != want {
		t.Fatalf("in-process Lock: %v, want %s", err, want)
	}
	if !bytes.Equal(before, f.mem) {
		t.Fatalf("Go lock attempts changed the mutex:\n  % x\n  % x", before, f.mem)
	}
	c := startPeer(t, "c", f.tgt)
	c.Must("lock", want)
	c.Must("timedlock 1000", want)
	// glibc zeroes __count on this path; the word, __owner and __kind
	// must stay.
	for _, r := range [][2]int{{0, 4}, {8, 12}, {16, 20}} {
		if !bytes.Equal(before[r[0]:r[1]], f.mem[r[0]:r[1]]) {
			t.Fatalf("C lock attempts changed the mutex:\n  % x\n  % x", before, f.mem)
		}
	}
}

// scenarioCounting: C and Go processes, and goroutines of the test
// process, each do read-pause-write increments under the lock; not one is
// lost.
func scenarioCounting(t *testing.T, f fixture) {
	n := 20000
	if testing.Short() {
		n = 5000
	}
	*f.counter = 0
	var peers []*proc
	for _, kind := range []string{"c", "go", "c", "go"} {
		p := startPeer(t, kind, f.tgt)
		peers = append(peers, p)
	}
	for _, p := range peers {
		p.Send("incr " + strconv.Itoa(n))
	}
	local := make(chan error, 2)
	for range 2 {
		go func() { local <- incr(f.m, f.counter, n) }()
	}
	for _, p := range peers {
		p.Expect("ok")
	}
	for range 2 {
		if err := result(t, local); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := *f.counter, int64(6*n); got != want {
		t.Fatalf("counter %d, want %d: %d increments lost", got, want, want-got)
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(fmt.Sprintf("not a number: %q", s))
	}
	return n
}

// awaitParked waits until at least n goroutines of this process are parked
// in a Mutex's room (waiting in Go, not in the kernel), as their stacks
// show, failing the test after the watchdog.
func awaitParked(t *testing.T, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(proctest.Watchdog)
	for {
		k := runtime.Stack(buf, true)
		if strings.Count(string(buf[:k]), "robustlock.(*room).join") >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d goroutines parked for the lock within %v", n, proctest.Watchdog)
		}
		time.Sleep(time.Millisecond)
	}
}
