package atomicx

import (
	"errors"
	"fmt"
	"unsafe"
)

// ErrRange reports a view that would not lie wholly inside its memory.
var ErrRange = errors.New("atomicx: view out of range")

// ErrAlign reports a view whose address is not aligned as the type requires.
var ErrAlign = errors.New("atomicx: misaligned view")

// Ptr returns a pointer to size bytes at mem[off:], checking that the range
// lies inside mem and that its address is a multiple of align (a power of two).
// The pointer stays valid as long as mem's backing memory does.
func Ptr(mem []byte, off, size, align int) (unsafe.Pointer, error) {
	if off < 0 || size < 0 || off > len(mem) || len(mem)-off < size {
		return nil, fmt.Errorf("%w: [%d, %d+%d) in %d bytes", ErrRange, off, off, size, len(mem))
	}
	if size == 0 {
		return nil, fmt.Errorf("%w: empty view", ErrRange)
	}
	p := unsafe.Pointer(unsafe.SliceData(mem[off:]))
	if uintptr(p)&uintptr(align-1) != 0 {
		return nil, fmt.Errorf("%w: address %#x is not %d-byte aligned", ErrAlign, uintptr(p), align)
	}
	return p, nil
}

// Uint32 returns the 4-byte-aligned 32-bit word at mem[off:].
func Uint32(mem []byte, off int) (*uint32, error) {
	p, err := Ptr(mem, off, 4, 4)
	return (*uint32)(p), err
}

// Uint64 returns the 8-byte-aligned 64-bit word at mem[off:].
func Uint64(mem []byte, off int) (*uint64, error) {
	p, err := Ptr(mem, off, 8, 8)
	return (*uint64)(p), err
}
