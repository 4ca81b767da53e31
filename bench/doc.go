// Package bench measures robustlock side by side with the locks a user
// would otherwise pick, in one run on one machine, and reports every figure
// with its ratio to robustlock's. It owns the comparison suite behind
// `robustlock bench` (Main), its worker processes, its report (text table,
// markdown, JSON, SVG charts) and the `go test -bench` micro benchmarks.
//
// # Contenders
//
//   - robustlock: robustlock.Mutex, pure Go.
//   - glibc-C: glibc's robust process-shared pthread mutex, driven by loops
//     written in C (the native baseline): no Go code runs between the
//     timestamps of a C round.
//   - glibc-cgo: the same glibc calls made from Go, one cgo call to lock
//     and one to unlock, with the goroutine pinned to its thread while it
//     holds the lock, as a Go program using glibc's mutex must.
//   - flock: flock(2) LOCK_EX on a lock file.
//   - fcntl-OFD: fcntl(2) open-file-description write locks on a lock file.
//   - sysv-sem: a SysV semaphore of value 1, semop -1/+1 with SEM_UNDO.
//   - sync.Mutex: in one process only, not robust: the floor, for context.
//
// The glibc contenders need cgo and sit behind the cgo build tag, so
// CGO_ENABLED=0 builds of the module compile; without cgo they appear in
// every table as unavailable, never silently dropped.
//
// # Method
//
// Uncontended: lock+unlock pairs in one goroutine of the bench process.
// A repetition gives each contender about 100 ms in 15 slices, the
// contenders interleaved slice by slice so that a change in the machine's
// load hits all alike; the repetition's figure is the median slice.
//
// Contended: P processes (1, 2, 4, 8 by default), each with G goroutines,
// all doing K rounds of lock, critical section, unlock on one lock in a
// shared file on tmpfs. The critical section bumps a counter in the shared
// file (the parent checks the total, which proves mutual exclusion held)
// and, for the non-empty case, spins on the clock for the given time.
// Every process times every acquisition itself on CLOCK_MONOTONIC (the
// vDSO clock: runtime.nanotime in Go, clock_gettime in C, the same cost),
// from just before lock to just after it returns, into a log-linear
// histogram (under 1.6% error) that the parent merges across processes
// before taking p50, p99 and max. Throughput is all rounds over the time
// from the first process's start to the last one's end. The processes are
// this binary re-executed as workers; they set up, warm up, and wait on a
// futex barrier that the parent opens once all are ready, so they really
// contend. A pilot run sizes K so that one run lasts about -run. For glibc-C
// the whole round loop, timestamps included, is C (rl_contend), called once
// per process on a pinned thread. Series: each contender with one thread
// per process; robustlock with G goroutines per process (blocked
// goroutines park their threads in the kernel: this shows what that
// costs); robustlock and sync.Mutex with P goroutines in one process.
//
// Hand-off: two processes pass the lock back and forth. The holder waits
// until the other process has announced itself and then a further -delay
// (so the waiter is asleep in the kernel, not spinning), reads the clock,
// unlocks; the waiter reads the clock when its lock returns. The figure is
// the difference: unlock in one process to lock returning in another. In a
// virtual machine this is mostly the hypervisor waking an idle virtual
// CPU, and it swings with what else the host runs; every contender pays it.
//
// Recovery: a worker takes the lock and waits; a second worker blocks in
// lock; the parent reads the clock and sends SIGKILL to the holder. The
// figure runs from that reading to the second worker's lock returning, and
// the table says whether that lock told it the owner had died (EOWNERDEAD
// for robustlock and glibc; flock, OFD locks and SEM_UNDO cannot tell).
//
// Segments: segment.Open of an existing segment (with Close), and of a new
// one (create, initialise, publish by link), next to a plain open+mmap and
// a plain create+mmap of a file for scale.
//
// Every figure is measured -reps times (7 by default); tables show the
// median and the spread (min – max). Nothing here asserts a speed: tests
// check that every contender is reported, never how fast it is.
//
// # Progress
//
// The tables go to stdout; stderr shows each section's rows as they are
// measured and the run's overall progress: the share of the planned work
// done, the time spent and an estimate of the time left (progress.go). On
// a terminal (golang.org/x/term) that is one status line redrawn below the
// rows; in a log, a line after each section. The estimate scales each
// section's planned cost by how long the work done so far really took.
//
// # Workers
//
// Worker processes re-execute os.Executable() with the argument "bench"
// and their task in the environment variable ROBUSTLOCK_BENCH_WORKER; Main
// serves them before parsing flags, and the package's TestMain does the
// same for the test binary. Workers die with the parent (PR_SET_PDEATHSIG).
package bench
