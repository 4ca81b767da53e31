package etcdlock

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/futexlab/robustlock"
)

// Guard returns the comparison that holds exactly while the acquisition m
// holds is still the lock's current one: the owner key exists and was
// created by m's acquisition. Put it in the If of a transaction to make
// its writes fenced: once m's lease has ended, or another Mutex has taken
// the lock, the transaction's Then branch is not applied. When m does not
// hold the lock the comparison never holds.
func (m *Mutex) Guard() clientv3.Cmp {
	fence := m.Fence()
	if fence == 0 {
		fence = -1 // no key has CreateRevision -1: never holds
	}
	return clientv3.Compare(clientv3.CreateRevision(m.Key()), "=", fence)
}

// Do applies ops in one transaction guarded by m's fence (see Guard). If
// m does not hold the lock it returns robustlock.ErrNotOwner; if the guard
// failed (m lost the lock) a *LostError; in both cases nothing was
// written. ops must not touch the lock's own keys.
func (m *Mutex) Do(ctx context.Context, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	if m.nilMutex() {
		return nil, robustlock.ErrNilMutex
	}
	m.mu.Lock()
	held, fence, lease := m.held, m.fence, m.lease
	m.mu.Unlock()
	if !held {
		return nil, robustlock.ErrNotOwner
	}
	resp, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(m.keys.owner), "=", fence)).
		Then(ops...).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return resp, &LostError{Name: m.keys.name, Fence: fence, Lease: int64(lease)}
	}
	return resp, nil
}

// Put writes key=val guarded by m's fence, as Do.
func (m *Mutex) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) error {
	_, err := m.Do(ctx, clientv3.OpPut(key, val, opts...))
	return err
}
