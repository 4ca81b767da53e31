// Package futex owns this module's futex(2) calls and the layout of a robust
// futex word.
//
// The calls are thin: one function per operation, errors returned as
// syscall.Errno exactly as the kernel gave them, EINTR retried only where
// retrying cannot change the meaning. Every operation is a *shared* futex op
// (no FUTEX_PRIVATE_FLAG), because the words live in memory mapped by
// several processes and because the kernel's death-time wake of a robust
// word is itself a shared wake: a private waiter would never see it.
//
// Deadlines are absolute CLOCK_MONOTONIC times, waited for with
// FUTEX_WAIT_BITSET, so a wait that is interrupted and restarted does not
// stretch its deadline.
package futex
