//go:build linux

package segment

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

func unmap(mem []byte) error { return unix.Munmap(mem) }

// reserve replaces the mapping mem with an inaccessible anonymous one of
// the same addresses, in one mmap(MAP_FIXED) so no other mapping can take
// them in between: the file is released, the addresses stay unusable.
func reserve(mem []byte) error {
	_, err := unix.MmapPtr(-1, 0, unsafe.Pointer(unsafe.SliceData(mem)), uintptr(len(mem)),
		unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED|unix.MAP_NORESERVE)
	return err
}
