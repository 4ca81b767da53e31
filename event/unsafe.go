package event

import "unsafe"

// unsafePtr turns an address from a futex_waitv entry (always inside a
// segment's mapping, never Go-managed memory) back into a pointer.
func unsafePtr(a uint64) unsafe.Pointer {
	u := uintptr(a)
	return *(*unsafe.Pointer)(unsafe.Pointer(&u))
}
