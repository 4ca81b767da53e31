// Package proctest owns the test-only scaffolding for tests that run real
// helper processes: the one helper-process protocol (Main, every
// TestMain's body, and Command; one environment variable, Env), talking to a helper in lines over stdin and stdout with a watchdog on
// every wait, and (on Linux) counting a process's threads asleep on shared
// futexes or in a given system call, and the seccomp proof that a loop
// makes no system call (NoSyscallLoop, ProveNoSyscall).
//
// It is imported only by _test.go files, and it imports "testing": it must
// never be imported by library code.
package proctest
