// Package atomicx owns the low-level views this module takes on raw shared
// memory: typed, bounds- and alignment-checked pointers into a mapped byte
// slice, and a CPU spin hint for short busy-waits.
//
// Everything here is about memory that the Go runtime does not manage (a
// MAP_SHARED mapping, or an mmap'd per-thread record). The atomic operations
// themselves are sync/atomic's; this package only makes sure the address they
// are applied to is inside the mapping and naturally aligned, which is what
// the kernel's futex and robust-list code also require.
package atomicx
