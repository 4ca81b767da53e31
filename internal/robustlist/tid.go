//go:build linux

package robustlist

import (
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Where the runtime keeps the current thread's kernel TID: g.m.procid.
// g.m has been at 6 words into g since Go 1.4; m.procid moves between
// releases (72 in older ones, 64 in Go 1.26), so it is searched for.
const (
	gmOffset      = 6 * unsafe.Sizeof(uintptr(0))
	procidScanMax = 512 // bytes of m searched for procid; m is far larger
	verifyThreads = 3   // distinct threads an offset must be right on
)

var (
	// procidOff is m.procid's offset once verified, 0 before or after a
	// mismatch; curTID (assembly) reads it to choose its path. Written
	// only with atomic stores.
	procidOff uintptr
	discovery sync.Once
)

// TID returns the calling thread's kernel thread id. The caller must be
// locked to its thread (runtime.LockOSThread) for the answer to stay true.
// Once discovery has verified the runtime's offsets it costs a few loads;
// before that, or if they never verify, it is a gettid(2) system call.
func TID() uint32 { return curTID() }

// FastTID reports whether TID is served without a system call.
func FastTID() bool {
	discovery.Do(discover)
	return atomic.LoadUintptr(&procidOff) != 0
}

// discover finds m.procid and turns the fast path on only if the offset
// gives the gettid answer on verifyThreads distinct threads. Every read of
// runtime memory is made with panic-on-fault, so a layout this code does not
// expect can cost the fast path but never crash the process.
func discover() {
	if !haveGetg {
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cands := procidCandidates(uint64(unix.Gettid()))
	results := make(chan []uintptr, verifyThreads-1)
	var ready sync.WaitGroup
	ready.Add(verifyThreads - 1)
	for i := 0; i < verifyThreads-1; i++ {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ready.Done()
			ready.Wait() // all verifiers locked at once: distinct threads
			results <- procidCandidates(uint64(unix.Gettid()))
		}()
	}
	for i := 0; i < verifyThreads-1; i++ {
		cands = intersect(cands, <-results)
	}
	if len(cands) > 0 {
		atomic.StoreUintptr(&procidOff, cands[0])
	}
}

// procidCandidates returns the offsets in the current thread's m that hold
// tid, after checking that g.m looks like an m (its g0's m points back).
func procidCandidates(tid uint64) (offs []uintptr) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			offs = nil
		}
	}()
	g := getg()
	mp := *(*unsafe.Pointer)(unsafe.Add(g, gmOffset))
	if mp == nil || uintptr(mp)%8 != 0 {
		return nil
	}
	g0 := *(*unsafe.Pointer)(mp) // m.g0 is m's first field
	if g0 == nil || uintptr(g0)%8 != 0 || *(*unsafe.Pointer)(unsafe.Add(g0, gmOffset)) != mp {
		return nil
	}
	for off := uintptr(8); off < procidScanMax; off += 8 {
		if *(*uint64)(unsafe.Add(mp, off)) == tid {
			offs = append(offs, off)
		}
	}
	return offs
}

func intersect(a, b []uintptr) []uintptr {
	var out []uintptr
	for _, x := range a {
		for _, y := range b {
			if x == y {
				out = append(out, x)
				break
			}
		}
	}
	return out
}

// verifyTID is called on every registration, where a system call is paid
// anyway: if the fast TID ever disagrees with gettid, the fast path is
// switched off for good and the true TID is returned.
func verifyTID() uint32 {
	real := uint32(unix.Gettid())
	if curTID() != real {
		atomic.StoreUintptr(&procidOff, 0)
	}
	return real
}
