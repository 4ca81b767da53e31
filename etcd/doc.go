// Package etcdlock is robustlock's contract across hosts: a named mutex on
// an etcd cluster that survives its holder's death and tells the next
// holder that the previous one died holding it.
//
// etcd's own concurrency.Mutex frees a dead holder's lock when its lease
// expires, but the next holder cannot tell that it happened. Here the lock
// is two keys under a prefix (default "/robustlock/"):
//
//	NAME/owner  attached to the holder's lease; its CreateRevision is the fence
//	NAME/state  no lease; the lock's recorded state: free, held, inconsistent
//	            or not recoverable, and the lease and identity of the holder
//
// Every change to the two keys is one etcd transaction that compares their
// revisions, so the outcome is decided by the cluster, never by a client's
// clock. When a holder's lease ends (its process was killed, its host went
// down, it was partitioned or paused past the TTL) etcd deletes its owner
// key, and the state key still says "held": the next Lock sees both in one
// transaction, takes the lock and returns robustlock.ErrOwnerDied, the same
// error value as the shared-memory Mutex, so errors.Is(err,
// robustlock.ErrOwnerDied) works for both and code can move between them.
// Repair, call MarkConsistent, then Unlock; an Unlock without
// MarkConsistent leaves the lock not recoverable (robustlock.ErrNotRecoverable)
// until Reset.
//
// # Differences from the shared-memory Mutex
//
// The owner is a *Mutex value (one lease), not an OS thread. A death is
// detected when the lease expires, so within the TTL plus the server's
// expiry check (half a second), not at once. A holder that was only slow
// (stopped, partitioned) may still run after it lost the lock: Lost is
// closed when its lease is gone, Unlock then returns a *LostError, and
// writes to etcd guarded by the acquisition's fence (Guard, Do, Put) are
// refused once another holder exists. For other storage, pass Fence(), a
// token that strictly increases across holders, and have the storage refuse
// writes carrying a token lower than one it has seen.
//
// Waiters are not queued: when the lock is freed every waiter retries and
// one wins. A waiting Lock costs one etcd watch, not a thread.
package etcdlock
