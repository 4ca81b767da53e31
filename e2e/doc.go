// Package e2e holds the end-to-end proofs of robustlock's claims. It has no
// API: everything is in its tests, run with go test ./e2e/.
//
// What it owns, and what each part proves:
//
//   - glibc interop: C programs in testdata, built by the tests with the
//     system gcc, share one mutex with Go processes through a mapped file, a
//     segment in a directory or a segment found with shm_open, and call
//     pthread_mutex_lock, unlock and consistent on it. Deaths (SIGKILL,
//     thread exit, exec) are recovered in both directions; a mutex made not
//     recoverable by either side is not recoverable for the other;
//     increments from both never get lost; mutexes initialised by either
//     side work from the other; the segment header is read and checked from
//     C with the struct documented in segment/doc.go.
//   - Chaos soak: Go and C workers move money between accounts under one
//     lock while they are SIGKILLed, stopped then killed, exec while
//     holding, and lose locking threads. Every death while holding is
//     checked to be reported to exactly one later locker, through an epoch
//     log kept in the shared memory; the accounts must always balance and no
//     survivor may wait longer than a bound. ROBUSTLOCK_SOAK=2h runs it for
//     two hours; by default it runs about a minute (seconds with -short).
//   - Static binary: a CGO_ENABLED=0 build (the demo command when it
//     exists, otherwise internal/staticjob) is checked to be statically
//     linked and runs its lock, kill and recover job in a chroot holding
//     nothing but itself, with and without /proc.
//   - PID namespaces: a process in a new PID namespace is refused an
//     existing segment unless it opts in.
//   - Hostile input: fuzz targets for segment files, names and options,
//     with seeds under testdata/fuzz; symbolic links, FIFOs, device nodes
//     and other users' files planted at a segment's name are never opened,
//     truncated or written; misuse of a Mutex or Segment from Go gets typed
//     errors and changes nothing.
//
// Tests that need root (chroot, namespaces, mknod, chown) or gcc skip with
// the reason when they are missing.
package e2e
