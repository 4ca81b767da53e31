package robustlock

// core is glibc's struct __pthread_mutex_s on 64-bit targets
// (sysdeps/nptl/bits/struct_mutex.h); field comments give glibc's names.
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
