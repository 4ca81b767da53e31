package etcdlock_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/futexlab/robustlock"
	etcdlock "github.com/futexlab/robustlock/etcd"
)

// liveness bounds how long a test waits for something that must happen:
// generous, since the machine may be loaded. Never a correctness bound.
const liveness = 60 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	t.Cleanup(cancel)
	return ctx
}

func newMutex(t *testing.T, cli *clientv3.Client, name, id string) *etcdlock.Mutex {
	t.Helper()
	m, err := etcdlock.New(cli, name, etcdlock.TTL(1), etcdlock.Identity(id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func is(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

func ok(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func inspect(t *testing.T, cli *clientv3.Client, name string) etcdlock.Status {
	t.Helper()
	st, err := etcdlock.Inspect(ctxT(t), cli, name)
	ok(t, "Inspect", err)
	return st
}

func TestLockUnlockErrors(t *testing.T) {
	cli := client(t, startNode(t))
	ctx := ctxT(t)
	a, b := newMutex(t, cli, "l", "a"), newMutex(t, cli, "l", "b")

	if st := inspect(t, cli, "l"); st.State != "free" || st.TTL != -1 {
		t.Fatalf("new lock: %+v", st)
	}
	ok(t, "a.Lock", a.Lock(ctx))
	f1 := a.Fence()
	if f1 <= 0 {
		t.Fatalf("fence %d", f1)
	}
	if st := inspect(t, cli, "l"); st.State != "held" || st.Holder.ID != "a" || st.Fence != f1 || !st.Consistent {
		t.Fatalf("held: %+v", st)
	}
	is(t, "a.Lock again", a.Lock(ctx), robustlock.ErrDeadlock)
	is(t, "a.TryLock again", a.TryLock(ctx), robustlock.ErrDeadlock)
	is(t, "b.TryLock", b.TryLock(ctx), robustlock.ErrBusy)
	is(t, "b.Unlock", b.Unlock(ctx), robustlock.ErrNotOwner)
	is(t, "b.MarkConsistent", b.MarkConsistent(ctx), robustlock.ErrNotOwner)
	is(t, "a.MarkConsistent", a.MarkConsistent(ctx), robustlock.ErrConsistent)
	is(t, "b.Reset", b.Reset(ctx), robustlock.ErrBusy)
	if a.Fence() != f1 || b.Fence() != 0 {
		t.Fatalf("fences changed: a %d b %d", a.Fence(), b.Fence())
	}
	select {
	case <-a.Lost():
		t.Fatal("a.Lost closed while held")
	default:
	}
	select {
	case <-b.Lost():
	default:
		t.Fatal("b.Lost open while b does not hold the lock")
	}
	ok(t, "a.Unlock", a.Unlock(ctx))
	is(t, "a.Unlock again", a.Unlock(ctx), robustlock.ErrNotOwner)
	if a.Fence() != 0 {
		t.Fatal("fence after unlock")
	}
	ok(t, "b.Lock", b.Lock(ctx))
	if b.Fence() <= f1 {
		t.Fatalf("fence did not increase: %d then %d", f1, b.Fence())
	}
	ok(t, "b.Unlock", b.Unlock(ctx))
	// The same Mutex again: one transaction from the state it left.
	ok(t, "b.Lock", b.Lock(ctx))
	ok(t, "b.Unlock", b.Unlock(ctx))
}

// A holder whose lease ends while it holds the lock (Close revokes it, as
// a death would let it expire): the next Lock gets ErrOwnerDied, the same
// value as the core package's, with the lock held. Unlock without
// MarkConsistent: not recoverable until Reset.
func TestOwnerDiedNotRecoverable(t *testing.T) {
	cli := client(t, startNode(t))
	ctx := ctxT(t)
	a, b, c := newMutex(t, cli, "l", "a"), newMutex(t, cli, "l", "b"), newMutex(t, cli, "l", "c")
	ok(t, "a.Lock", a.Lock(ctx))
	lease := inspect(t, cli, "l").Holder.Lease
	ok(t, "a.Close", a.Close())
	if st := inspect(t, cli, "l"); st.State != "owner died" || st.Holder.ID != "a" || st.Consistent {
		t.Fatalf("after the holder's death: %+v", st)
	}
	err := b.Lock(ctx)
	is(t, "b.Lock", err, robustlock.ErrOwnerDied)
	is(t, "b.Lock", err, syscall.EOWNERDEAD)
	if d := b.DeadOwner(); d.ID != "a" || d.Lease != lease {
		t.Fatalf("DeadOwner %+v, want a with lease %x", d, lease)
	}
	if st := inspect(t, cli, "l"); st.State != "inconsistent" || st.Holder.ID != "b" || st.Died == nil || st.Died.ID != "a" || st.Deaths != 1 {
		t.Fatalf("recovering: %+v", st)
	}
	is(t, "c.TryLock", c.TryLock(ctx), robustlock.ErrBusy)
	ok(t, "b.Unlock", b.Unlock(ctx)) // no MarkConsistent
	if st := inspect(t, cli, "l"); st.State != "not recoverable" || st.Consistent {
		t.Fatalf("after unlock without MarkConsistent: %+v", st)
	}
	is(t, "c.Lock", c.Lock(ctx), robustlock.ErrNotRecoverable)
	is(t, "c.TryLock", c.TryLock(ctx), robustlock.ErrNotRecoverable)
	is(t, "b.Lock", b.Lock(ctx), robustlock.ErrNotRecoverable)
	if c.Fence() != 0 {
		t.Fatal("not-recoverable Lock took the lock")
	}
	ok(t, "c.Reset", c.Reset(ctx))
	ok(t, "c.Lock after Reset", c.Lock(ctx))
	ok(t, "c.Unlock", c.Unlock(ctx))
	is(t, "a after Close", a.Lock(ctx), etcdlock.ErrClosed)
}

// MarkConsistent after repair leaves the lock usable; a repairer that dies
// before MarkConsistent hands the owner-died state on to the next holder.
func TestOwnerDiedRepair(t *testing.T) {
	cli := client(t, startNode(t))
	ctx := ctxT(t)
	a, b, c := newMutex(t, cli, "l", "a"), newMutex(t, cli, "l", "b"), newMutex(t, cli, "l", "c")
	ok(t, "a.Lock", a.Lock(ctx))
	ok(t, "a.Close", a.Close())
	is(t, "b.Lock", b.Lock(ctx), robustlock.ErrOwnerDied)
	// b dies while repairing; TryLock recovers too, as pthread_mutex_trylock.
	ok(t, "b.Close", b.Close())
	is(t, "c.TryLock", c.TryLock(ctx), robustlock.ErrOwnerDied)
	if d := c.DeadOwner(); d.ID != "b" {
		t.Fatalf("DeadOwner %+v, want b", d)
	}
	ok(t, "c.MarkConsistent", c.MarkConsistent(ctx))
	is(t, "c.MarkConsistent again", c.MarkConsistent(ctx), robustlock.ErrConsistent)
	if st := inspect(t, cli, "l"); st.State != "held" || !st.Consistent || st.Deaths != 2 {
		t.Fatalf("after MarkConsistent: %+v", st)
	}
	ok(t, "c.Unlock", c.Unlock(ctx))
	d := newMutex(t, cli, "l", "d")
	ok(t, "d.Lock", d.Lock(ctx))
	ok(t, "d.Unlock", d.Unlock(ctx))
}

// Lock waits for the holder and honours its context; Close ends a wait.
func TestLockWaits(t *testing.T) {
	cli := client(t, startNode(t))
	ctx := ctxT(t)
	a, b, c := newMutex(t, cli, "l", "a"), newMutex(t, cli, "l", "b"), newMutex(t, cli, "l", "c")
	ok(t, "a.Lock", a.Lock(ctx))

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	is(t, "c.Lock with a deadline", c.Lock(short), context.DeadlineExceeded)
	cancel()

	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx) }()
	closed := make(chan error, 1)
	go func() { closed <- c.Lock(ctx) }()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-got:
		t.Fatalf("b.Lock returned %v while a holds the lock", err)
	default:
	}
	is(t, "Lock during b's Lock", b.Lock(ctx), robustlock.ErrDeadlock)
	ok(t, "c.Close", c.Close())
	is(t, "c.Lock after Close", <-closed, etcdlock.ErrClosed)
	ok(t, "a.Unlock", a.Unlock(ctx))
	ok(t, "b.Lock", <-got)
	ok(t, "b.Unlock", b.Unlock(ctx))
}

// A holder whose lease is gone learns it: Lost closes, fenced writes are
// refused, Unlock returns a *LostError that is ErrLost and ErrNotOwner.
func TestLostLease(t *testing.T) {
	cli := client(t, startNode(t))
	ctx := ctxT(t)
	a, b := newMutex(t, cli, "l", "a"), newMutex(t, cli, "l", "b")
	ok(t, "a.Lock", a.Lock(ctx))
	ok(t, "a.Put", a.Put(ctx, "data", "a1"))
	st := inspect(t, cli, "l")
	_, err := cli.Revoke(ctx, clientv3.LeaseID(st.Holder.Lease))
	ok(t, "Revoke", err)
	select {
	case <-a.Lost():
	case <-time.After(liveness):
		t.Fatal("Lost not closed after the lease was revoked")
	}
	err = a.Put(ctx, "data", "a2")
	is(t, "a.Put after loss", err, etcdlock.ErrLost)
	is(t, "b.Lock", b.Lock(ctx), robustlock.ErrOwnerDied)
	ok(t, "b.Put", b.Put(ctx, "data", "b1"))
	err = a.Unlock(ctx)
	var lost *etcdlock.LostError
	if !errors.As(err, &lost) || lost.Lease != st.Holder.Lease || lost.Fence != st.Fence {
		t.Fatalf("a.Unlock: %v, want a *LostError for lease %x fence %d", err, st.Holder.Lease, st.Fence)
	}
	is(t, "a.Unlock", err, etcdlock.ErrLost)
	is(t, "a.Unlock", err, robustlock.ErrNotOwner)
	resp, err := cli.Get(ctx, "data")
	ok(t, "Get", err)
	if v := string(resp.Kvs[0].Value); v != "b1" {
		t.Fatalf("data = %q, want b1", v)
	}
	// a starts over with a new lease.
	ok(t, "b.MarkConsistent", b.MarkConsistent(ctx))
	ok(t, "b.Unlock", b.Unlock(ctx))
	ok(t, "a.Lock", a.Lock(ctx))
	ok(t, "a.Unlock", a.Unlock(ctx))
}

// Guard composes into the caller's own transactions.
func TestGuard(t *testing.T) {
	cli := client(t, startNode(t))
	ctx := ctxT(t)
	a, b := newMutex(t, cli, "l", "a"), newMutex(t, cli, "l", "b")
	_, err := a.Do(ctx, clientv3.OpPut("k", "x"))
	is(t, "Do unheld", err, robustlock.ErrNotOwner)
	ok(t, "a.Lock", a.Lock(ctx))
	resp, err := cli.Txn(ctx).If(a.Guard(), clientv3.Compare(clientv3.Version("k"), "=", 0)).
		Then(clientv3.OpPut("k", "a")).Commit()
	ok(t, "guarded txn", err)
	if !resp.Succeeded {
		t.Fatal("a's guard failed while a holds the lock")
	}
	resp, err = cli.Txn(ctx).If(b.Guard()).Then(clientv3.OpPut("k", "b")).Commit()
	ok(t, "b's guarded txn", err)
	if resp.Succeeded {
		t.Fatal("b's guard held while a holds the lock")
	}
	ok(t, "a.Unlock", a.Unlock(ctx))
	resp, err = cli.Txn(ctx).If(a.Guard()).Then(clientv3.OpPut("k", "a2")).Commit()
	ok(t, "a's guarded txn after unlock", err)
	if resp.Succeeded {
		t.Fatal("a's guard held after its Unlock (with the lock free)")
	}
}

// A Lock whose reply was lost after it committed is adopted by the next
// Lock on the same Mutex (simulated: the keys are written as that
// transaction would have, with the Mutex's own lease).
func TestAdoptCommittedLock(t *testing.T) {
	cli := client(t, startNode(t))
	ctx := ctxT(t)
	a := newMutex(t, cli, "l", "a")
	ok(t, "a.Lock", a.Lock(ctx))
	ok(t, "a.Unlock", a.Unlock(ctx))
	lease := clientv3.LeaseID(inspect(t, cli, "l").Holder.Lease) // a's session, still live
	resp, err := cli.Txn(ctx).Then(
		clientv3.OpPut("/robustlock/l/owner", "a", clientv3.WithLease(lease)),
		clientv3.OpPut("/robustlock/l/state", `{"state":"held","lease":`+strconv.FormatInt(int64(lease), 10)+`,"holder":"a"}`)).Commit()
	ok(t, "simulated commit", err)
	ok(t, "a.Lock adopts", a.Lock(ctx))
	if a.Fence() != resp.Header.Revision {
		t.Fatalf("adopted fence %d, want %d", a.Fence(), resp.Header.Revision)
	}
	ok(t, "a.Unlock", a.Unlock(ctx))
}

func TestBadInput(t *testing.T) {
	cli := client(t, startNode(t))
	ctx := ctxT(t)
	_, err := etcdlock.New(nil, "l")
	is(t, "nil client", err, etcdlock.ErrBadOption)
	for _, name := range []string{"", "a\nb", "a\x00", string([]byte{0xff})} {
		_, err = etcdlock.New(cli, name)
		is(t, "name "+name, err, etcdlock.ErrBadName)
		_, err = etcdlock.Inspect(ctx, cli, name)
		is(t, "Inspect "+name, err, etcdlock.ErrBadName)
	}
	_, err = etcdlock.New(cli, "l", etcdlock.TTL(0))
	is(t, "TTL(0)", err, etcdlock.ErrBadOption)
	_, err = etcdlock.New(cli, "l", etcdlock.Prefix(""))
	is(t, "empty prefix", err, etcdlock.ErrBadOption)

	for _, m := range []*etcdlock.Mutex{nil, new(etcdlock.Mutex)} {
		is(t, "nil Lock", m.Lock(ctx), robustlock.ErrNilMutex)
		is(t, "nil TryLock", m.TryLock(ctx), robustlock.ErrNilMutex)
		is(t, "nil Unlock", m.Unlock(ctx), robustlock.ErrNilMutex)
		is(t, "nil MarkConsistent", m.MarkConsistent(ctx), robustlock.ErrNilMutex)
		is(t, "nil Reset", m.Reset(ctx), robustlock.ErrNilMutex)
		is(t, "nil Close", m.Close(), robustlock.ErrNilMutex)
		_, err := m.Do(ctx)
		is(t, "nil Do", err, robustlock.ErrNilMutex)
		if m.Fence() != 0 || m.DeadOwner() != (etcdlock.Holder{}) {
			t.Fatal("nil Mutex: non-zero Fence or DeadOwner")
		}
		<-m.Lost()
		m.Guard()
	}

	_, err = cli.Put(ctx, "/robustlock/l/state", "garbage")
	ok(t, "Put", err)
	a := newMutex(t, cli, "l", "a")
	is(t, "Lock on a corrupt state", a.Lock(ctx), etcdlock.ErrCorrupt)
	_, err = etcdlock.Inspect(ctx, cli, "l")
	is(t, "Inspect corrupt", err, etcdlock.ErrCorrupt)
	resp, err := cli.Get(ctx, "/robustlock/l/state")
	ok(t, "Get", err)
	if string(resp.Kvs[0].Value) != "garbage" {
		t.Fatal("a failed Lock changed the state key")
	}
	ok(t, "Reset", a.Reset(ctx))
	ok(t, "Lock after Reset", a.Lock(ctx))
	ok(t, "Unlock", a.Unlock(ctx))
}

// Mutexes on one lock, in goroutines, exclude each other: at most one is
// between Lock and Unlock at any time, and every Lock eventually succeeds.
func TestExclusion(t *testing.T) {
	cli := client(t, startNode(t))
	ctx := ctxT(t)
	const n, rounds = 4, 15
	var inside, total atomic.Int32
	errs := make(chan error, n)
	for i := range n {
		m, err := etcdlock.New(cli, "l", etcdlock.TTL(30))
		ok(t, "New", err)
		t.Cleanup(func() { m.Close() })
		go func() {
			for range rounds {
				if err := m.Lock(ctx); err != nil {
					errs <- fmt.Errorf("%d: Lock: %w", i, err)
					return
				}
				if inside.Add(1) != 1 {
					errs <- fmt.Errorf("%d: two holders at once", i)
					return
				}
				total.Add(1)
				time.Sleep(time.Millisecond)
				inside.Add(-1)
				if err := m.Unlock(ctx); err != nil {
					errs <- fmt.Errorf("%d: Unlock: %w", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if total.Load() != n*rounds {
		t.Fatalf("%d acquisitions, want %d", total.Load(), n*rounds)
	}
}
