//go:build linux

package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/futexlab/robustlock/event"
)

// syncBuf is a bytes.Buffer safe for a command running in a goroutine.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestPubSub(t *testing.T) {
	dir := t.TempDir()
	var out, errb syncBuf
	done := make(chan int, 1)
	if st := run([]string{"pub", "-dir", dir, "ch", "first"}, &out, &errb); st != 0 {
		t.Fatalf("pub: %d %s", st, errb.String())
	}
	go func() { done <- run([]string{"sub", "-dir", dir, "-n", "2", "--json", "ch"}, &out, &errb) }()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		st, err := event.Inspect("ch", event.Dir(dir))
		if err == nil && st.SubscribersAsleep {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sub never went to sleep")
		}
	}
	for _, m := range []string{"hello", "world"} {
		if st := run([]string{"pub", "-dir", dir, "ch", m}, &out, &errb); st != 0 {
			t.Fatalf("pub: %d %s", st, errb.String())
		}
	}
	if st := <-done; st != 0 {
		t.Fatalf("sub: %d %s", st, errb.String())
	}
	want := "{\"data\":\"hello\",\"seq\":1}\n{\"data\":\"world\",\"seq\":2}\n"
	if out.String() != want {
		t.Fatalf("sub printed %q, want %q", out.String(), want)
	}
}

func TestReqServe(t *testing.T) {
	dir := t.TempDir()
	var sout, serr syncBuf
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"serve", "-dir", dir, "-n", "2", "rpc", "--", "tr", "a-z", "A-Z"}, &sout, &serr)
	}()
	for _, m := range []string{"hello", "again"} {
		var out, errb syncBuf
		if st := run([]string{"req", "-dir", dir, "rpc", m}, &out, &errb); st != 0 {
			t.Fatalf("req: %d %s", st, errb.String())
		}
		if got := out.String(); got != strings.ToUpper(m)+"\n" {
			t.Fatalf("req printed %q", got)
		}
	}
	if st := <-done; st != 0 {
		t.Fatalf("serve: %d %s", st, serr.String())
	}
}

func TestEventUsage(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"pub", "onlyname"}, {"sub"}, {"req", "x"}, {"serve"}} {
		if st := run(args, &out, &errb); st != exitUsage {
			t.Errorf("%v: status %d, want %d", args, st, exitUsage)
		}
	}
}

// inspect shows an event channel's state after the segment's, and in its
// JSON; a plain segment has none.
func TestInspectChannel(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	for _, msg := range []string{"a", "b", "c"} {
		if st := run([]string{"pub", "-dir", dir, "ch", msg}, &out, &errb); st != 0 {
			t.Fatalf("pub: %d %s", st, errb.String())
		}
	}
	out.Reset()
	if st := run([]string{"inspect", "-dir", dir, "ch"}, &out, &errb); st != 0 {
		t.Fatalf("inspect: %d %s", st, errb.String())
	}
	if !strings.Contains(out.String(), "event channel: 3 messages published, 3 of") {
		t.Fatalf("inspect of a channel says:\n%s", out.String())
	}
	out.Reset()
	if st := run([]string{"inspect", "-dir", dir, "--json", "ch"}, &out, &errb); st != 0 {
		t.Fatalf("inspect --json: %d %s", st, errb.String())
	}
	if !strings.Contains(out.String(), `"channel": {`) || !strings.Contains(out.String(), `"head": 3`) {
		t.Fatalf("inspect --json of a channel:\n%s", out.String())
	}
}
