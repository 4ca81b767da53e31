//go:build linux

package robustlock_test

import "testing"

// BenchmarkLockUnlock is the uncontended fast path: no syscall, no
// allocation. bench/ compares it with glibc's C loop in the same run.
func BenchmarkLockUnlock(b *testing.B) {
	_, _, m := shared(b)
	b.ReportAllocs()
	for b.Loop() {
		m.Lock()
		m.Unlock()
	}
}

// BenchmarkLockUnlockGuarded is the same pair through Guarded, which turns
// a memory fault into ErrFault: compare with BenchmarkLockUnlock in the
// same run for the guard's cost.
func BenchmarkLockUnlockGuarded(b *testing.B) {
	_, _, m := shared(b)
	g := m.Guarded()
	b.ReportAllocs()
	for b.Loop() {
		g.Lock()
		g.Unlock()
	}
}
