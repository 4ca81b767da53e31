//go:build linux

package event

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/futexlab/robustlock/internal/futex"
	"github.com/futexlab/robustlock/internal/proctest"
	"github.com/futexlab/robustlock/segment"
)

// Hostile channel headers: each is a typed error (ErrBadChannel, also
// segment.ErrCorrupt), no panic, and the file is not written.
func TestHostileHeaders(t *testing.T) {
	dir := t.TempDir()
	c, err := Open("good", Dir(dir), Capacity(4), MaxMessage(100), Requests(2))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	orig, err := os.ReadFile(filepath.Join(dir, "good"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := segment.Stat("good", segment.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	base := int(info.DataOffset)
	put32 := func(off int, v uint32) func([]byte) {
		return func(b []byte) { binary.NativeEndian.PutUint32(b[base+off:], v) }
	}
	put64 := func(off int, v uint64) func([]byte) {
		return func(b []byte) { binary.NativeEndian.PutUint64(b[base+off:], v) }
	}
	cases := map[string]func([]byte){
		"magic":             func(b []byte) { b[base] = 'X' },
		"version":           put32(8, 2),
		"header size":       put32(12, 64),
		"capacity 0":        put32(16, 0),
		"capacity huge":     put32(16, MaxCapacity+1),
		"capacity other":    put32(16, 5),
		"capacity max":      put32(16, 0xffffffff),
		"max message 0":     put32(20, 0),
		"max message huge":  put32(20, 1<<31),
		"max message other": put32(20, 200),
		"slot stride":       put32(24, 64),
		"requests 0":        put32(28, 0),
		"requests over max": put32(28, MaxRequests+1),
		"requests other":    put32(28, 1),
		"request stride":    put32(32, 1<<20),
		"flags":             put32(36, 1),
		"ring offset":       put64(40, 1<<40),
		"queue offset":      put64(48, 0),
		"total size":        put64(56, 1<<62),
		"reserved":          func(b []byte) { b[base+100] = 1 },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			b := bytes.Clone(orig)
			mutate(b)
			path := filepath.Join(dir, "bad")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, opts := range [][]Option{{Dir(dir), OpenOnly()}, {Dir(dir)}, {Dir(dir), Capacity(4)}} {
				c, err := Open("bad", opts...)
				if err == nil {
					c.Close()
					t.Fatalf("Open accepted a channel with a bad %s", name)
				}
				if !errors.Is(err, ErrBadChannel) || !errors.Is(err, segment.ErrCorrupt) {
					t.Fatalf("Open = %v, want ErrBadChannel", err)
				}
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
				t.Fatal("a refused Open changed the file")
			}
		})
	}
	// A segment that is not a channel, and one whose mutexes do not fit.
	if s, err := segment.Open("plain", segment.Dir(dir), segment.Size(4096)); err != nil {
		t.Fatal(err)
	} else {
		s.Close()
	}
	if _, err := Open("plain", Dir(dir)); !errors.Is(err, ErrBadChannel) {
		t.Fatalf("Open of a plain segment = %v, want ErrBadChannel", err)
	}
	l := newLayout(4, 100, 2)
	s, err := segment.Open("nomutex", segment.Dir(dir), segment.Size(l.total),
		segment.Init(func(d []byte) error { l.write(d); return nil }))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open("nomutex", Dir(dir)); !errors.Is(err, ErrBadChannel) {
		t.Fatalf("Open of a channel without its slot mutexes = %v, want ErrBadChannel", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "junk"), []byte("not a segment"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open("junk", Dir(dir)); !errors.Is(err, segment.ErrTruncated) && !errors.Is(err, segment.ErrBadMagic) {
		t.Fatalf("Open of junk = %v, want a segment error", err)
	}
}

// Live words written by a hostile peer: typed errors, no panic, no hang.
func TestHostileLiveState(t *testing.T) {
	c := open(t, t.TempDir(), "live", Capacity(4), MaxMessage(16), Requests(2))
	ctx, cancel := context.WithTimeout(context.Background(), proctest.Watchdog)
	defer cancel()
	s, _ := c.Subscribe()
	c.Publish([]byte("x"))
	c.slot(0).len = 1 << 30 // a length over MaxMessage
	if _, err := s.Next(ctx); !errors.Is(err, ErrBadChannel) {
		t.Fatalf("Next of a message with a huge length = %v, want ErrBadChannel", err)
	}
	c.slot(0).len = 1
	*c.head = 1 << 50 // head far ahead: a lap, then slots that do not hold their message
	s2, _ := c.Subscribe()
	*c.head = 3 // head behind the subscriber
	if _, err := s2.Next(ctx); !errors.Is(err, ErrBadChannel) {
		t.Fatalf("Next with head moved back = %v, want ErrBadChannel", err)
	}
	s3, _ := c.Subscribe() // at 3; slot 3 never written
	*c.head = 4
	if _, err := s3.Next(ctx); !errors.Is(err, ErrBadChannel) {
		t.Fatalf("Next of an unwritten slot = %v, want ErrBadChannel", err)
	}
	// A request slot whose length is out of range: the server refuses it,
	// the requester is told, the slot is freed.
	done := make(chan error, 1)
	go func() { _, err := c.Request(ctx, []byte("q")); done <- err }()
	for c.Stats().Slots[0].Phase != "queued" && c.Stats().Slots[1].Phase != "queued" {
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < 2; i++ {
		c.rslot(i).reqLen = 1 << 31
	}
	sctx, scancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer scancel()
	if r, err := c.NextRequest(sctx); err == nil {
		t.Fatalf("NextRequest took a request with a huge length: %q", r.Data())
	}
	if err := <-done; !errors.Is(err, ErrServerDied) {
		t.Fatalf("Request whose slot was corrupted = %v, want ErrServerDied", err)
	}
	if n := c.Stats().SlotsInUse(); n != 0 {
		t.Fatalf("%d slots in use", n)
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, l := range []layout{newLayout(1, 1, 1), newLayout(4, 100, 2), newLayout(3, 64, MaxRequests)} {
		b := make([]byte, l.total)
		l.write(b)
		f.Add(b)
		f.Add(b[:ringOffset])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrBadChannel) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if l.total != len(b) || l.queueOff+l.requests*l.reqStride != l.total ||
			l.ringOff+l.capacity*l.slotStride != l.queueOff || l.slotStride < slotHdr+l.maxMessage ||
			l.reqStride < reqHdr+l.maxMessage {
			t.Fatalf("accepted an inconsistent layout %+v for %d bytes", l, len(b))
		}
	})
}

// Publish and NextInto allocate nothing.
func TestPublishNextIntoAllocateNothing(t *testing.T) {
	c := open(t, t.TempDir(), "alloc", Capacity(64), MaxMessage(128))
	s, _ := c.Subscribe()
	msg := make([]byte, 100)
	buf := make([]byte, 0, 128)
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { c.Publish(msg) }); n != 0 {
		t.Fatalf("Publish: %v allocs/op", n)
	}
	s, _ = c.Subscribe()
	if n := testing.AllocsPerRun(1000, func() {
		c.Publish(msg)
		if _, err := s.NextInto(ctx, buf); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Publish+NextInto: %v allocs/op", n)
	}
}

// With nobody asleep, Publish makes no system call: a helper forbids
// every system call on its thread with seccomp and publishes (the harness,
// and what it proves on a slow machine: proctest's nosyscall_linux.go).
func TestPublishMakesNoSyscall(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes system calls of its own")
	}
	dir := t.TempDir()
	c := open(t, dir, "nosys", Capacity(64), MaxMessage(64))
	proctest.ProveNoSyscall(t, "Publish with nobody asleep", func() *exec.Cmd {
		return helperCommand(dir, "nosys", "nosyscall")
	}, func(words []string) func() bool {
		if len(words) != 2 {
			t.Fatalf("helper's ready line %q does not give the head it starts from", words)
		}
		n, _ := strconv.ParseUint(words[0], 10, 64)
		from, _ := strconv.ParseUint(words[1], 10, 64)
		return func() bool { return c.Head() >= from+n }
	})
}

// The bounds of the helper's loop of Publishes (proctest.NoSyscallLoop
// sizes it to about 2 ms between them).
const (
	minNoSyscallPublishes = 1000
	maxNoSyscallPublishes = 20000
)

// noSyscallPublish is the helper of TestPublishMakesNoSyscall: its ready
// line gives the head its Publishes start from.
func noSyscallPublish(c *Channel) int {
	runtime.LockOSThread()
	msg := []byte("no syscall")
	publish := func() bool { return c.Publish(msg) == nil }
	if !publish() { // registers the thread's robust list
		return 1
	}
	return proctest.NoSyscallLoop(publish, minNoSyscallPublishes, maxNoSyscallPublishes,
		func() string { return strconv.FormatUint(c.Head(), 10) }, func() {})
}

// A request slot's st overwritten under an awaiting requester (another
// ticket, or a phase no awaited request can be in): the requester repairs
// its slot and reports the request lost (ErrServerDied), rather than a
// corrupt channel with the slot left taken; the slot serves again.
func TestHostileSlotPhase(t *testing.T) {
	c := open(t, t.TempDir(), "phase", MaxMessage(16), Requests(1))
	ctx, cancel := context.WithTimeout(context.Background(), proctest.Watchdog)
	defer cancel()
	for _, forge := range []func(st uint32) uint32{
		func(st uint32) uint32 { return mk(pQueued, ticketOf(st)-1) },
		func(st uint32) uint32 { return mk(pClaimed, ticketOf(st)+7) },
		func(st uint32) uint32 { return mk(pFilling, ticketOf(st)) },
		func(st uint32) uint32 { return mk(pAbandoned, ticketOf(st)) },
	} {
		done := make(chan error, 1)
		go func() { _, err := c.Request(ctx, []byte("q")); done <- err }()
		for c.Stats().Slots[0].Phase != "queued" {
			time.Sleep(time.Millisecond)
		}
		s := c.rslot(0)
		atomic.StoreUint32(&s.st, forge(atomic.LoadUint32(&s.st)))
		// The forgery does not change the word the requester sleeps on, so
		// a wake sent before it sleeps is lost: wake until it answers.
		_, cl := c.words(0)
		var err error
		for answered := false; !answered; {
			futex.Wake(cl, futex.WakeAll)
			select {
			case err = <-done:
				answered = true
			case <-time.After(time.Millisecond):
			}
		}
		if !errors.Is(err, ErrServerDied) {
			t.Fatalf("Request whose slot phase was overwritten = %v, want ErrServerDied", err)
		}
		if n := c.Stats().SlotsInUse(); n != 0 {
			t.Fatalf("%d slots in use after the repair: %+v", n, c.Stats().Slots)
		}
	}
	go func() {
		if r, err := c.NextRequest(ctx); err == nil {
			r.Respond([]byte("re:again"))
		}
	}()
	if got, err := c.Request(ctx, []byte("again")); err != nil || string(got) != "re:again" {
		t.Fatalf("Request after the repairs = %q, %v", got, err)
	}
}
