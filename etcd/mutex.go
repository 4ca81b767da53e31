package etcdlock

// The lock's state machine, as recorded in NAME/state (rec) with the
// presence of NAME/owner (own). Every arrow is one etcd transaction whose
// If compares CreateRevision(owner) and ModRevision(state) with what the
// caller last read, so two clients can never both take an arrow from the
// same state; a failed compare returns both keys (the Else branch) and the
// caller decides again from those.
//
//	free,          no owner   --Lock-->            held,          owner(L)  nil
//	held(D),       no owner   --Lock-->            inconsistent,  owner(L)  ErrOwnerDied (D's lease ended)
//	inconsistent(D), no owner --Lock-->            inconsistent,  owner(L)  ErrOwnerDied (the repairer died too)
//	notrecoverable, no owner  --Lock-->            unchanged                 ErrNotRecoverable
//	any,           owner(M)   --Lock-->            unchanged                 wait / ErrBusy (M != L)
//	held,          owner(L)   --Unlock-->          free,          no owner
//	inconsistent,  owner(L)   --Unlock-->          notrecoverable, no owner
//	inconsistent,  owner(L)   --MarkConsistent-->  held,          owner(L)
//	held|inconsistent, owner(L) --lease L ends-->  unchanged,     no owner  (etcd deletes the key)
//	no owner                  --Reset-->           free
//
// owner(L) is NAME/owner attached to lease L; its CreateRevision, the
// revision of the transaction that took the lock, is the fence. Unlock and
// MarkConsistent compare CreateRevision(owner) with their fence, so a holder
// whose key is gone, or was created again by a later holder, changes
// nothing and gets a *LostError. "The owner died" is therefore exactly "the
// state key says held and the owner key is gone", both read at one revision:
// the cluster decides it, never a client's clock.
//
// If a transaction that took the lock fails ambiguously (the reply was lost
// but the write committed), the retry finds an owner key with this Mutex's
// own lease and adopts it (fence and consistency as recorded). An Unlock
// retried the same way finds the state key released with its own fence.
//
// Synchronization: op serialises the calls that change the lock (Lock,
// TryLock, Unlock, MarkConsistent, Reset, Close) and is only ever
// TryLock'ed by them, except by Close: a second call while one is in
// progress fails at once (ErrDeadlock for Lock, ErrNotOwner for the rest)
// instead of waiting. mu guards the fields after it and is held only for
// short reads and writes, so Fence, Lost and Do never wait for a Lock.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/futexlab/robustlock"
)

// DefaultTTL is the session lease's TTL in seconds when New is given no
// TTL option: a holder that dies is detected between DefaultTTL and
// DefaultTTL+1 seconds later.
const DefaultTTL = 10

// DefaultPrefix is where a lock's keys live when New is given no Prefix.
const DefaultPrefix = "/robustlock/"

// ErrClosed is returned by every call on a Mutex after Close.
var ErrClosed = errors.New("etcdlock: mutex closed")

// An Option configures New (and, for Prefix, Inspect).
type Option func(*config)

type config struct {
	ttl    int
	prefix string
	id     string
	err    error
}

// TTL sets the TTL of the session lease, in whole seconds (at least 1; the
// server may raise it to its minimum). A holder that dies or is cut off is
// detected once its lease expires, so this is the detection time.
func TTL(seconds int) Option {
	return func(c *config) {
		if seconds < 1 {
			c.err = fmt.Errorf("%w: TTL %d, want at least 1 second", ErrBadOption, seconds)
		}
		c.ttl = seconds
	}
}

// Prefix sets the key prefix under which the lock's keys live (default
// DefaultPrefix). Every user of one lock must use the same prefix.
func Prefix(p string) Option {
	return func(c *config) {
		if p == "" {
			c.err = fmt.Errorf("%w: empty prefix", ErrBadOption)
		}
		c.prefix = p
	}
}

// Identity sets the holder identity shown by Inspect and DeadOwner
// (default host:pid).
func Identity(id string) Option {
	return func(c *config) { c.id = id }
}

func newConfig(cli *clientv3.Client, opts []Option) (config, error) {
	c := config{ttl: DefaultTTL, prefix: DefaultPrefix}
	host, _ := os.Hostname()
	c.id = fmt.Sprintf("%s:%d", host, os.Getpid())
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if cli == nil && c.err == nil {
		c.err = fmt.Errorf("%w: nil client", ErrBadOption)
	}
	return c, c.err
}

// Mutex is a named lock on an etcd cluster, owned by this value: two
// Mutexes for the same name exclude each other, in one process or in many,
// on one host or on many. Make one with New; on a nil or zero Mutex every
// call returns robustlock.ErrNilMutex.
type Mutex struct {
	cli  *clientv3.Client
	keys keys
	cfg  config

	ctx    context.Context // cancelled by Close; parent of the session
	cancel context.CancelFunc
	op     sync.Mutex

	mu           sync.Mutex
	sess         *concurrency.Session // nil until the first Lock, and after its lease ends
	held         bool
	fence        int64
	lease        clientv3.LeaseID
	lost         <-chan struct{}
	inconsistent bool
	dead         Holder
	deaths       int64
	seen         *seenState // the state key as this Mutex left it, if free; nil when unknown
	closed       bool
}

// seenState is a state key read or written at revision rev (0: absent).
type seenState struct {
	rev int64
	rec record
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// New returns the Mutex for the lock name on the cluster cli talks to. It
// does not contact the cluster: the session lease is granted by the first
// Lock. Several Mutexes may share one client.
func New(cli *clientv3.Client, name string, opts ...Option) (*Mutex, error) {
	cfg, err := newConfig(cli, opts)
	if err != nil {
		return nil, err
	}
	k, err := lockKeys(cfg.prefix, name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Mutex{cli: cli, keys: k, cfg: cfg, ctx: ctx, cancel: cancel}, nil
}

// Name returns the lock's name ("" for a nil Mutex).
func (m *Mutex) Name() string {
	if m == nil {
		return ""
	}
	return m.keys.name
}

// Key returns the lock's owner key, whose CreateRevision is the fence of
// the current holder. Applications must not write it or the state key
// beside it.
func (m *Mutex) Key() string {
	if m == nil {
		return ""
	}
	return m.keys.owner
}

// Lock acquires the lock, waiting while another Mutex holds it, until ctx
// ends.
//
// On nil, and on robustlock.ErrOwnerDied, the lock is held by m.
// ErrOwnerDied means the previous holder's lease ended while it held the
// lock (its process was killed, its host went down, or it was cut off or
// paused past its TTL): repair the data the lock guards, call
// MarkConsistent, then Unlock. robustlock.ErrNotRecoverable (not held) means a
// recovering holder unlocked without MarkConsistent. robustlock.ErrDeadlock
// means m already holds the lock or another Lock on m is in progress;
// nothing is changed. Any other error (ctx ended, cluster unreachable)
// leaves m not holding the lock, although an attempt whose reply was lost
// may have taken it for m's lease: the next Lock on m adopts such a lock,
// and Close releases it (as a death).
func (m *Mutex) Lock(ctx context.Context) error { return m.acquire(ctx, true) }

// TryLock acquires the lock if no other Mutex holds it: like Lock, but
// returns robustlock.ErrBusy instead of waiting.
func (m *Mutex) TryLock(ctx context.Context) error { return m.acquire(ctx, false) }

func (m *Mutex) acquire(ctx context.Context, wait bool) error {
	if m.nilMutex() {
		return robustlock.ErrNilMutex
	}
	if !m.op.TryLock() {
		return robustlock.ErrDeadlock
	}
	defer m.op.Unlock()
	m.mu.Lock()
	closed, held, guess := m.closed, m.held, m.seen
	m.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case held:
		return robustlock.ErrDeadlock
	}
	ctx, cancel := m.opContext(ctx)
	defer cancel()

	for round := 0; ; {
		sess, err := m.session(ctx)
		if err != nil {
			if err = retryable(ctx, err, &round); err != nil {
				return err
			}
			continue
		}
		lease := sess.Lease()
		// One transaction: take the lock from the guessed state, or read
		// both keys. Without a guess the compare cannot hold (revision -1).
		cmpRev, died, put := int64(-1), false, ""
		if guess != nil {
			cmpRev = guess.plan(lease, m.cfg.id, &died, &put)
		}
		resp, err := m.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(m.keys.owner), "=", 0),
				clientv3.Compare(clientv3.ModRevision(m.keys.state), "=", cmpRev)).
			Then(clientv3.OpPut(m.keys.owner, m.cfg.id, clientv3.WithLease(lease)),
				clientv3.OpPut(m.keys.state, put)).
			Else(m.keys.readOps()...).Commit()
		if err != nil {
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				m.dropSession(sess) // expired between Grant and now: take a new one
				guess = nil
				continue
			}
			if err = retryable(ctx, err, &round); err != nil {
				return err
			}
			guess = nil
			continue
		}
		if resp.Succeeded {
			var dead Holder
			if died {
				dead = Holder{guess.rec.Holder, guess.rec.Lease}
			}
			deaths := guess.rec.Deaths
			if died {
				deaths++
			}
			return m.took(sess, resp.Header.Revision, died, dead, deaths)
		}
		owner, state := readResult(resp)
		rec, err := decodeRecord(state)
		switch {
		case owner != nil && clientv3.LeaseID(owner.Lease) == lease:
			// An earlier attempt of ours committed but its reply was lost.
			if err != nil {
				return err
			}
			incons := rec.State == stInconsistent
			var dead Holder
			if rec.Died != nil {
				dead = *rec.Died
			}
			return m.took(sess, owner.CreateRevision, incons, dead, rec.Deaths)
		case owner != nil:
			if !wait {
				return robustlock.ErrBusy
			}
			if err := m.waitRelease(ctx, resp.Header.Revision); err != nil {
				return err
			}
			guess = nil
		case err != nil:
			return err
		case rec.State == stNotRecoverable:
			return robustlock.ErrNotRecoverable
		default: // free, or the recorded holder is gone: take it from here
			rev := int64(0)
			if state != nil {
				rev = state.ModRevision
			}
			guess = &seenState{rev, rec}
		}
	}
}

// plan returns the state revision to compare and, in put, the state to
// write when taking the lock from s for lease; died reports an owner death.
func (s *seenState) plan(lease clientv3.LeaseID, id string, died *bool, put *string) int64 {
	next := record{State: stHeld, Lease: int64(lease), Holder: id, Deaths: s.rec.Deaths}
	switch s.rec.State {
	case stFree:
	case stHeld, stInconsistent:
		*died = true
		next.State, next.Deaths = stInconsistent, s.rec.Deaths+1
		next.Died = &Holder{s.rec.Holder, s.rec.Lease}
	default:
		return -1 // not a state a Lock takes from: just read
	}
	*put = next.encode()
	return s.rev
}

// took records an acquisition by sess at fence.
func (m *Mutex) took(sess *concurrency.Session, fence int64, died bool, dead Holder, deaths int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held, m.fence, m.lease, m.lost = true, fence, sess.Lease(), sess.Done()
	m.inconsistent, m.dead, m.deaths, m.seen = died, dead, deaths, nil
	if died {
		return robustlock.ErrOwnerDied
	}
	return nil
}

// waitRelease returns once the owner key may have been deleted after
// revision rev, or with ctx's error.
func (m *Mutex) waitRelease(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := m.cli.Watch(clientv3.WithRequireLeader(wctx), m.keys.owner,
		clientv3.WithRev(rev+1), clientv3.WithFilterPut())
	// The watch is the wake-up; the timer only bounds how long a lost
	// watch (a member restarting) could delay a retry. Liveness, not
	// correctness: every retry decides again from a transaction.
	t := time.NewTimer(time.Duration(m.cfg.ttl) * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
			return nil
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil || len(wr.Events) > 0 {
				return nil
			}
		}
	}
}

// Unlock releases the lock. A *LostError (errors.Is ErrLost) means m had
// lost it before the call (its lease ended, or its key was deleted):
// nothing was changed, and m no longer holds it. robustlock.ErrNotOwner
// means m does not hold it. Unlocking after ErrOwnerDied without
// MarkConsistent makes the lock not recoverable for everyone. On other
// errors (cluster unreachable, ctx ended) m still holds the lock; call
// Unlock again.
func (m *Mutex) Unlock(ctx context.Context) error {
	if m.nilMutex() {
		return robustlock.ErrNilMutex
	}
	if !m.op.TryLock() {
		return robustlock.ErrNotOwner // a Lock on m is in progress: m does not hold it
	}
	defer m.op.Unlock()
	m.mu.Lock()
	held, fence, lease, incons, deaths := m.held, m.fence, m.lease, m.inconsistent, m.deaths
	m.mu.Unlock()
	if !held {
		return robustlock.ErrNotOwner
	}
	ctx, cancel := m.opContext(ctx)
	defer cancel()
	next := record{State: stFree, Lease: int64(lease), Holder: m.cfg.id, Fence: fence, Deaths: deaths}
	if incons {
		next.State = stNotRecoverable
	}
	for round := 0; ; {
		resp, err := m.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(m.keys.owner), "=", fence)).
			Then(clientv3.OpDelete(m.keys.owner), clientv3.OpPut(m.keys.state, next.encode())).
			Else(m.keys.readOps()...).Commit()
		if err != nil {
			if err = retryable(ctx, err, &round); err != nil {
				return err
			}
			continue
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		m.held = false
		if resp.Succeeded {
			if !incons {
				m.seen = &seenState{resp.Header.Revision, next}
			}
			return nil
		}
		if _, state := readResult(resp); state != nil {
			if r, err := decodeRecord(state); err == nil && r.Fence == fence &&
				(r.State == stFree || r.State == stNotRecoverable) {
				return nil // an earlier attempt of ours committed
			}
		}
		return &LostError{Name: m.keys.name, Fence: fence, Lease: int64(lease)}
	}
}

// MarkConsistent declares the data the lock guards repaired after
// ErrOwnerDied, so that the next Unlock leaves the lock usable; it is
// recorded in etcd (Inspect shows it) under the fence. m must hold the
// lock (robustlock.ErrNotOwner otherwise, or a *LostError if it lost it)
// and the lock must be inconsistent (robustlock.ErrConsistent otherwise).
func (m *Mutex) MarkConsistent(ctx context.Context) error {
	if m.nilMutex() {
		return robustlock.ErrNilMutex
	}
	if !m.op.TryLock() {
		return robustlock.ErrNotOwner
	}
	defer m.op.Unlock()
	m.mu.Lock()
	held, fence, lease, incons, deaths := m.held, m.fence, m.lease, m.inconsistent, m.deaths
	m.mu.Unlock()
	switch {
	case !held:
		return robustlock.ErrNotOwner
	case !incons:
		return robustlock.ErrConsistent
	}
	ctx, cancel := m.opContext(ctx)
	defer cancel()
	next := record{State: stHeld, Lease: int64(lease), Holder: m.cfg.id, Deaths: deaths}
	for round := 0; ; {
		resp, err := m.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(m.keys.owner), "=", fence)).
			Then(clientv3.OpPut(m.keys.state, next.encode())).Commit()
		if err != nil {
			if err = retryable(ctx, err, &round); err != nil {
				return err
			}
			continue
		}
		if !resp.Succeeded {
			return &LostError{Name: m.keys.name, Fence: fence, Lease: int64(lease)}
		}
		m.mu.Lock()
		m.inconsistent = false
		m.mu.Unlock()
		return nil
	}
}

// Reset makes a lock that nobody holds free and consistent: the way back
// from robustlock.ErrNotRecoverable (or from a corrupt state key), once
// every user agrees that the guarded data has been rebuilt, like Init for
// the shared-memory Mutex. It also discards an unrecovered owner death. A
// lock held by a live lease is left alone: robustlock.ErrBusy.
func (m *Mutex) Reset(ctx context.Context) error {
	if m.nilMutex() {
		return robustlock.ErrNilMutex
	}
	if !m.op.TryLock() {
		return robustlock.ErrDeadlock
	}
	defer m.op.Unlock()
	if m.isClosed() {
		return ErrClosed
	}
	ctx, cancel := m.opContext(ctx)
	defer cancel()
	cmpRev, deaths := int64(-1), int64(0)
	for round := 0; ; {
		next := record{State: stFree, Deaths: deaths}
		resp, err := m.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(m.keys.owner), "=", 0),
				clientv3.Compare(clientv3.ModRevision(m.keys.state), "=", cmpRev)).
			Then(clientv3.OpPut(m.keys.state, next.encode())).
			Else(m.keys.readOps()...).Commit()
		if err != nil {
			if err = retryable(ctx, err, &round); err != nil {
				return err
			}
			cmpRev = -1
			continue
		}
		if resp.Succeeded {
			m.mu.Lock()
			m.seen = &seenState{resp.Header.Revision, next}
			m.mu.Unlock()
			return nil
		}
		owner, state := readResult(resp)
		if owner != nil {
			return robustlock.ErrBusy
		}
		cmpRev = 0
		if state != nil {
			cmpRev = state.ModRevision
			if r, err := decodeRecord(state); err == nil {
				deaths = r.Deaths
			}
		}
	}
}

// Fence returns this acquisition's fencing token while m holds the lock
// (0 otherwise): the revision of the transaction that took it, which
// strictly increases from one holder to the next. Storage outside etcd
// that remembers the highest token it has seen and refuses lower ones
// cannot be written by a holder that lost the lock to a later one.
func (m *Mutex) Fence() int64 {
	if m.nilMutex() {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.held {
		return 0
	}
	return m.fence
}

// Lost returns a channel closed when the lease under which m holds the lock
// is gone: expired (as the server says on m's next keep-alive), revoked, or
// not renewed within its TTL. From then on another Mutex may hold the lock;
// stop acting as its owner. When m does not hold the lock the channel is
// already closed.
func (m *Mutex) Lost() <-chan struct{} {
	if m.nilMutex() {
		return closedChan
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.held {
		return closedChan
	}
	return m.lost
}

// DeadOwner returns, after Lock returned ErrOwnerDied and until Unlock,
// the holder whose lease ended while it held the lock; the zero Holder
// otherwise.
func (m *Mutex) DeadOwner() Holder {
	if m.nilMutex() {
		return Holder{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.held || !m.inconsistent {
		return Holder{}
	}
	return m.dead
}

// Close ends m: a Lock waiting on m returns, and m's lease is revoked. If m
// holds the lock, the lock is NOT released cleanly: the next holder gets
// ErrOwnerDied, exactly as if this process had died (call Unlock first for
// a clean release). Every later call returns ErrClosed.
func (m *Mutex) Close() error {
	if m.nilMutex() {
		return robustlock.ErrNilMutex
	}
	m.cancel()
	m.op.Lock()
	defer m.op.Unlock()
	m.mu.Lock()
	sess := m.sess
	m.sess, m.held, m.closed = nil, false, true
	m.mu.Unlock()
	if sess == nil {
		return nil
	}
	// The session's context is m.ctx, already cancelled: Revoke with its
	// own bounded one.
	sess.Orphan()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(m.cfg.ttl)*time.Second)
	defer cancel()
	_, err := m.cli.Revoke(ctx, sess.Lease())
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		err = nil
	}
	return err
}

// nilMutex reports a nil or zero Mutex (not made by New), on which every
// call returns robustlock.ErrNilMutex or a zero value instead of panicking.
func (m *Mutex) nilMutex() bool { return m == nil || m.cli == nil }

func (m *Mutex) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// session returns m's live session, granting a new lease when there is
// none or the last one has ended.
func (m *Mutex) session(ctx context.Context) (*concurrency.Session, error) {
	m.mu.Lock()
	s := m.sess
	m.mu.Unlock()
	if s != nil {
		select {
		case <-s.Done():
			m.dropSession(s)
		default:
			return s, nil
		}
	}
	g, err := m.cli.Grant(ctx, int64(m.cfg.ttl))
	if err != nil {
		return nil, err
	}
	s, err = concurrency.NewSession(m.cli, concurrency.WithLease(g.ID),
		concurrency.WithTTL(m.cfg.ttl), concurrency.WithContext(m.ctx))
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.sess = s
	m.mu.Unlock()
	return s, nil
}

// dropSession forgets s, which has ended or whose lease is gone.
func (m *Mutex) dropSession(s *concurrency.Session) {
	s.Orphan()
	m.mu.Lock()
	if m.sess == s {
		m.sess = nil
	}
	m.mu.Unlock()
}

// opContext is ctx, also cancelled by Close.
func (m *Mutex) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(m.ctx, func() { cancel(ErrClosed) })
	return ctx, func() { stop(); cancel(nil) }
}

// retryable returns nil after a pause if err is a transient cluster error
// (no leader, leader changed, member unreachable: gRPC Unavailable) and ctx
// is still live, else the error to return (ctx's cause first: ErrClosed if
// m was closed).
func retryable(ctx context.Context, err error, round *int) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if status.Code(err) != codes.Unavailable && !errors.Is(err, rpctypes.ErrLeaderChanged) &&
		!errors.Is(err, rpctypes.ErrNoLeader) && !errors.Is(err, rpctypes.ErrTimeout) &&
		!errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) {
		return err
	}
	d := 20 * time.Millisecond << min(*round, 5)
	*round++
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
