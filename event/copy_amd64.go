package event

// copyOut copies a message out of a ring slot. On amd64 loads are not
// reordered with later loads, so a plain copy is ordered before the
// seqlock's second read of ver.
func copyOut(dst, src []byte) { copy(dst, src) }
