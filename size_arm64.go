package robustlock

// Size is sizeof(pthread_mutex_t): 48 bytes on arm64 (the 40 glibc uses on
// every 64-bit target, then 8 reserved zero bytes).
const Size = 48
