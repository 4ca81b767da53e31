//go:build linux && (amd64 || arm64)

package robustlist

import "unsafe"

// LookupFast is Lookup's common case in one assembly call: nil where
// Lookup would have more to do (TID not verified, a TID beyond the flat
// array, no live record), and the caller then calls Lookup or Current.
func LookupFast() *Thread

// The assembly hard-codes these; the build fails if the types move.
var (
	_ [unsafe.Offsetof(record{}.sentinel) - 32]struct{}
	_ [32 - unsafe.Offsetof(record{}.sentinel)]struct{}
	_ [recordSize - 128]struct{}
	_ [128 - recordSize]struct{}
	_ [gmOffset - 48]struct{}
	_ [48 - gmOffset]struct{}
)

// getg returns the current goroutine's g, as the runtime's own assembly
// finds it (TLS slot on amd64, the g register on arm64).
func getg() unsafe.Pointer

// curTID returns the calling thread's TID: g.m.procid when procidOff is
// set (verified), else gettid(2).
func curTID() uint32

const haveGetg = true
