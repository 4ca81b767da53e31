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
