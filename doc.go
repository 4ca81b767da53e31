// Package robustlock is a robust, process-shared mutex for Linux, in pure Go.
//
// A Mutex lives in memory that several unrelated processes map (a file in
// /dev/shm, see package segment). Its lock word holds the owner's kernel
// thread id, and every thread that takes it has a robust list registered
// with the kernel (package robustlist), so when a holder dies (SIGKILL, a
// crash, a goroutine exiting while it holds the lock) the kernel marks the
// word OWNER_DIED and wakes a waiter. The next Lock, in any process, returns
// ErrOwnerDied, which means the lock IS held: the data it guards may be
// half-written; repair it, call MarkConsistent, then Unlock. Do does all of
// that on every path, panics included. Unlocking without MarkConsistent
// makes the mutex not recoverable (Unlock says so with
// ErrUnlockedInconsistent): every later Lock returns ErrNotRecoverable, as
// POSIX requires.
//
// The Mutex has exactly the layout and protocol of glibc's pthread_mutex_t
// initialised robust and process-shared, so C and C++ programs calling
// pthread_mutex_lock on the same memory are peers: they wait for each
// other, and each recovers the other's deaths.
//
// # Threads and goroutines
//
// The lock belongs to an OS thread, not a goroutine: Lock pins the calling
// goroutine to its thread (runtime.LockOSThread, nested correctly) and
// Unlock releases the pin. Unlock must therefore be called by the goroutine
// that locked; any other gets ErrNotOwner and nothing changes.
//
// A goroutine that exits while holding a lock ends its thread (Go does this
// for goroutines that exit locked to their thread), so the kernel marks the
// lock OWNER_DIED: in-process deaths are detected too. The exception is the
// main thread, which never exits: a goroutine that ends holding a lock while
// running on it leaves the lock held until the process exits. Programs that
// lock from many goroutines can keep other goroutines off the main thread by
// calling runtime.LockOSThread in an init function, which keeps the main
// goroutine on it for good.
//
// # Limits
//
// Linux on amd64 and arm64 only (elsewhere every call returns
// ErrUnsupported). All processes sharing a mutex must be in the same PID
// namespace, since lock words hold TIDs. The kernel walks at most 2048
// entries of a dying thread's list, so one thread should not hold more. A
// thread other than the main one that calls exec while holding a lock
// leaves it held for good (the kernel gives that thread the process's PID
// before it walks its list); exec from the main thread is recovered. musl
// uses a different layout and cannot be a peer.
//
// Uncontended Lock and Unlock make no system call and allocate nothing.
package robustlock
