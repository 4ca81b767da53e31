package futex

// The bits of a robust futex word (include/uapi/linux/futex.h). The kernel
// reads and writes these at thread death; glibc and this module use the same
// encoding, so a word can be shared between them.
const (
	// TIDMask selects the owner's kernel thread id; 0 means free.
	TIDMask uint32 = 0x3fffffff
	// OwnerDied is set by the kernel when the owner died holding the word,
	// at the same time as it clears the TID bits.
	OwnerDied uint32 = 0x40000000
	// Waiters says some thread may be asleep in FUTEX_WAIT on the word; a
	// releaser that sees it must wake one.
	Waiters uint32 = 0x80000000
)

// WakeAll is the count that wakes every waiter.
const WakeAll = 1<<31 - 1
