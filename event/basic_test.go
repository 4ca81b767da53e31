//go:build linux

package event

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func open(t testing.TB, dir, name string, opts ...Option) *Channel {
	t.Helper()
	c, err := Open(name, append([]Option{Dir(dir)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestPublishSubscribeInOrder(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, "ch", Capacity(8), MaxMessage(64))
	s, _ := c.Subscribe()
	for i := 0; i < 5; i++ {
		if err := c.Publish([]byte(fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		m, err := s.Next(ctx)
		if err != nil || string(m) != fmt.Sprint("m", i) {
			t.Fatalf("message %d: %q, %v", i, m, err)
		}
	}
	if err := c.Publish(make([]byte, 65)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Publish of 65 bytes on MaxMessage 64 = %v, want ErrTooLarge", err)
	}
	// A second Open, in the same process, sees the same channel.
	c2 := open(t, dir, "ch")
	if c2.Capacity() != 8 || c2.MaxMessage() != 64 {
		t.Fatalf("reopened with capacity %d, max %d", c2.Capacity(), c2.MaxMessage())
	}
	if _, err := Open("ch", Dir(dir), Capacity(9)); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Open with another Capacity = %v, want ErrMismatch", err)
	}
	s2, _ := c2.Subscribe()
	c.Publish([]byte("across"))
	if m, err := s2.Next(ctx); err != nil || string(m) != "across" {
		t.Fatalf("got %q, %v", m, err)
	}
}

func TestLappedExactCount(t *testing.T) {
	c := open(t, t.TempDir(), "lap", Capacity(4), MaxMessage(16))
	s, _ := c.Subscribe()
	for i := 0; i < 11; i++ {
		c.Publish([]byte{byte(i)})
	}
	_, err := s.Next(context.Background())
	var le *LappedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLapped) || le.Missed != 7 {
		t.Fatalf("Next after 11 messages on a ring of 4 = %v, want a lap of 7", err)
	}
	for i := 7; i < 11; i++ {
		m, err := s.Next(context.Background())
		if err != nil || !bytes.Equal(m, []byte{byte(i)}) {
			t.Fatalf("after the lap, message %d: %v, %v", i, m, err)
		}
	}
}

func TestNextWaitsAndHonoursContext(t *testing.T) {
	c := open(t, t.TempDir(), "wait", Capacity(4), MaxMessage(16))
	s, _ := c.Subscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next with nothing published = %v, want DeadlineExceeded", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel2() }()
	if _, err := s.Next(ctx2); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next cancelled = %v, want Canceled", err)
	}
	go func() { time.Sleep(10 * time.Millisecond); c.Publish([]byte("late")) }()
	if m, err := s.Next(context.Background()); err != nil || string(m) != "late" {
		t.Fatalf("Next = %q, %v", m, err)
	}
}

func TestRequestRespondInProcess(t *testing.T) {
	c := open(t, t.TempDir(), "rr", Requests(4), MaxMessage(64))
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 20; i++ {
			r, err := c.NextRequest(ctx)
			if err != nil {
				done <- err
				return
			}
			if err := r.Respond(append([]byte("re:"), r.Data()...)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < 20; i++ {
		got, err := c.Request(ctx, []byte(fmt.Sprint(i)))
		if err != nil || string(got) != fmt.Sprint("re:", i) {
			t.Fatalf("request %d: %q, %v", i, got, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.SlotsInUse() != 0 {
		t.Fatalf("slots in use after all requests: %+v", st.Slots)
	}
}

func TestRequestGivesUpAndServerSeesGone(t *testing.T) {
	c := open(t, t.TempDir(), "gone", Requests(2), MaxMessage(64))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := c.Request(ctx, []byte("x")); errc <- err }()
	r, err := c.NextRequest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Request = %v, want Canceled", err)
	}
	if err := r.Respond([]byte("late")); !errors.Is(err, ErrRequesterGone) {
		t.Fatalf("Respond after the requester gave up = %v, want ErrRequesterGone", err)
	}
	if st := c.Stats(); st.SlotsInUse() != 0 {
		t.Fatalf("slots in use: %+v", st.Slots)
	}
	// A queued request withdrawn before anyone took it frees its slot too.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if _, err := c.Request(ctx2, []byte("y")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unanswered Request = %v", err)
	}
	if st := c.Stats(); st.SlotsInUse() != 0 {
		t.Fatalf("slots in use: %+v", st.Slots)
	}
}

// Close releases what this process holds as a death would: a requester
// whose server's Channel closed gets ErrServerDied, a Request in flight
// in the closing Channel returns ErrClosed, and no slot stays taken.
func TestCloseReleasesClaimsAndRequests(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, "close", Requests(2), MaxMessage(64))
	srv, err := Open("close", Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := c.Request(context.Background(), []byte("x")); errc <- err }()
	if _, err := srv.NextRequest(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("Close with a claimed request: %v", err)
	}
	if err := <-errc; !errors.Is(err, ErrServerDied) {
		t.Fatalf("Request whose server closed = %v, want ErrServerDied", err)
	}
	c2, err := Open("close", Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, err := c2.Request(context.Background(), []byte("y")); errc <- err }()
	for c.Stats().SlotsInUse() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := c2.Close(); err != nil {
		t.Fatalf("Close with a Request in flight: %v", err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Request in flight at Close = %v, want ErrClosed", err)
	}
	if n := c.Stats().SlotsInUse(); n != 0 {
		t.Fatalf("%d slots in use after Close", n)
	}
	if err := c2.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
}

// Channels of one process on one file share its mapping: each closes on
// its own, the last one unmaps, CreateOnly still refuses an existing one.
func TestChannelsShareAMapping(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, "share")
	b := open(t, dir, "share")
	if &a.data[0] != &b.data[0] {
		t.Fatal("two Opens of one file in one process map it twice")
	}
	if _, err := Open("share", Dir(dir), CreateOnly()); err == nil {
		t.Fatal("CreateOnly opened an existing channel")
	}
	s, _ := b.Subscribe()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b.Publish([]byte("still mapped"))
	if m, err := s.Next(context.Background()); err != nil || string(m) != "still mapped" {
		t.Fatalf("after the other Channel closed: %q, %v", m, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if mappings.m[a.mp.id] != nil {
		t.Fatal("the mapping outlived its last Channel")
	}
}
