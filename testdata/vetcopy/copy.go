// Package vetcopy copies a Mutex, which go vet must report
// (TestVetReportsCopies).
package vetcopy

import "github.com/futexlab/robustlock"

// Copy returns a copy of *m: wrong, a Mutex must not be copied.
func Copy(m *robustlock.Mutex) robustlock.Mutex { return *m }
