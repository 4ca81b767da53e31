//go:build !arm64

package robustlock

// Size is sizeof(pthread_mutex_t) on 64-bit glibc targets: 40 bytes.
const Size = 40
