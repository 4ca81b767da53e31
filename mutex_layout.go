package robustlock

// core is glibc's struct __pthread_mutex_s on 64-bit targets
// (sysdeps/nptl/bits/struct_mutex.h); field comments give glibc's names.
//
// Synchronization: the access rule of each field, which lock.go, mutex.go
// and inuse.go follow (glibc's code keeps the same rule, so C peers do):
//
//	__lock    Shared with every thread of every process and with the
//	          kernel, which sets OWNER_DIED in it when a holder dies. Atomic
//	          operations only, everywhere.
//	__owner   Written only by the thread that holds the lock (the acquire
//	          sets TID or INCONSISTENT, MarkConsistent swaps INCONSISTENT for
//	          the TID, Unlock writes 0 or NOTRECOVERABLE before it releases
//	          the word), and by Init, which no one may race. The holder
//	          reads and writes it with plain accesses: no one else writes
//	          it, and the word's atomic release and acquire order one
//	          holder's writes before the next holder's reads. Every other
//	          reader, being racy, uses atomic.LoadInt32: lockers that poll
//	          for NOTRECOVERABLE before each try (an atomic load is re-read
//	          every time round the loop, never hoisted out of it), TryLock,
//	          and State. They need only some value the field has held: an
//	          aligned 4-byte store never tears, and a stale read costs at
//	          most one more trip round a loop whose CAS or futex wait on the
//	          word re-checks.
//	__count, __nusers, __list
//	          Holder only, plain. State reads __nusers racily, atomically,
//	          as a snapshot. The kernel reads __list (the robust list entry)
//	          only once the holding thread has stopped.
//	__kind    Written by Init only (atomically, before any use); read by
//	          everyone atomically.
//	__spins   A racy per-mutex estimate of how long to spin: any locker
//	          loads and stores it atomically, and the last writer wins.
//
// This memory is not the Go heap (the race detector does not watch it),
// and the plain holder accesses are the ones glibc makes too; Go's
// compiler keeps them in program order around the atomic operations.
type core struct {
	lock   uint32  // __lock: the futex word, TID | OWNER_DIED | WAITERS
	count  uint32  // __count: 1 while held
	owner  int32   // __owner: TID, or ownerInconsistent / ownerNotRecoverable
	nusers uint32  // __nusers: incremented by each Lock, decremented by Unlock
	kind   int32   // __kind: kindRobust | kindPshared for Init's mutexes
	spins  int32   // __spins and __elision: unused by robust mutexes
	prev   uintptr // __list.__prev: the previous entry's __next (process-local)
	next   uintptr // __list.__next: the robust list entry itself
}

// __owner values with special meaning (nptl/pthreadP.h).
const (
	ownerInconsistent   = 0x7fffffff
	ownerNotRecoverable = 0x7ffffffe
)

// __kind bits (nptl/pthreadP.h).
const (
	kindTypeMask = 3   // normal 0, recursive 1, errorcheck 2, adaptive 3
	kindRecurse  = 1   // the one type whose protocol this package lacks
	kindRobust   = 16  // PTHREAD_MUTEX_ROBUST_NORMAL_NP
	kindPI       = 32  // priority inheritance: a different futex protocol
	kindPP       = 64  // priority protection: likewise
	kindPshared  = 128 // set by glibc for every robust mutex
	kindProtocol = kindRobust | kindPI | kindPP

	// KindRobustNormal is the __kind Init writes: what glibc writes for
	// pthread_mutexattr_setrobust(PTHREAD_MUTEX_ROBUST) with the default
	// type, process-shared.
	KindRobustNormal = kindRobust | kindPshared
)
