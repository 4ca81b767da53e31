//go:build !amd64

package event

import (
	"sync/atomic"
	"unsafe"
)

// copyOut copies a message out of a ring slot with acquire loads of its
// 8-byte words (slot data is 8-byte aligned), so that no read of the data
// can be reordered after the seqlock's second read of ver.
func copyOut(dst, src []byte) {
	n := len(src) &^ 7
	for i := 0; i < n; i += 8 {
		w := atomic.LoadUint64((*uint64)(unsafe.Pointer(&src[i])))
		*(*[8]byte)(dst[i:]) = *(*[8]byte)(unsafe.Pointer(&w))
	}
	if n < len(src) {
		w := atomic.LoadUint64((*uint64)(unsafe.Pointer(&src[n])))
		b := *(*[8]byte)(unsafe.Pointer(&w))
		copy(dst[n:], b[:len(src)-n])
	}
}
