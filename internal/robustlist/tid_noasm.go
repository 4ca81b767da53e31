//go:build linux && !amd64 && !arm64

package robustlist

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

func getg() unsafe.Pointer { return nil }

// LookupFast returns Lookup(): there is no assembly fast path here.
func LookupFast() *Thread { return Lookup() }

func curTID() uint32 { return uint32(unix.Gettid()) }

const haveGetg = false
