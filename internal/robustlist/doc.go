// Package robustlist owns the calling thread's identity and its kernel
// robust-futex list: the two things a lock word that holds its owner's TID
// needs from the thread that takes it.
//
// Identity: Current reads the kernel TID the Go runtime already keeps for
// every M (m.procid), through the current g, without a system call. The
// field offsets are not part of any Go API, so they are discovered at run
// time and verified against gettid(2) on several threads before they are
// trusted; every later registration compares them with gettid again. If
// anything fails to verify, or on an architecture other than amd64 and
// arm64, Current falls back to gettid(2) on every call: slower, never wrong.
//
// Registration: each thread needs a robust list registered with
// set_robust_list(2), once, in memory that never moves and is never freed.
// Records live in mmap'd chunks indexed by TID. A thread that already has a
// list (glibc registers one on every thread it creates: cgo binaries, -race
// builds) joins that list with glibc's own enqueue and dequeue, so glibc's
// registration is never replaced. See thread.go for the record's states.
//
// The caller must keep the goroutine on its thread (runtime.LockOSThread)
// from Current until it is done with the returned *Thread.
package robustlist
