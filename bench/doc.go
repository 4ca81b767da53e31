// Package bench measures robustlock side by side with the locks a user
// would otherwise pick: glibc's robust process-shared pthread mutex (as a C
// loop, and called from Go through cgo), file locks, SysV semaphores and
// sync.Mutex. Every figure is reported as a ratio against robustlock
// measured in the same run, never as an absolute threshold.
//
// The glibc contenders need cgo and sit behind the cgo build tag, so
// CGO_ENABLED=0 builds of the module still compile; without cgo they are
// reported as unavailable.
package bench
