//go:build linux && (amd64 || arm64)

package robustlist

import "unsafe"

// getg returns the current goroutine's g, as the runtime's own assembly
// finds it (TLS slot on amd64, the g register on arm64).
func getg() unsafe.Pointer

// curTID returns the calling thread's TID: g.m.procid when procidOff is
// set (verified), else gettid(2).
func curTID() uint32

const haveGetg = true
