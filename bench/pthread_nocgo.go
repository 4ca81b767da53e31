//go:build !cgo || !linux

//lint:file-ignore U1000 the stubs below are called by the Linux suite only, which is not built everywhere

package bench

import "unsafe"

// HaveGlibc reports whether the glibc contenders are built in (cgo).
const HaveGlibc = false

// GlibcInit reports that glibc is not built in.
func GlibcInit(p unsafe.Pointer) error { return errNoCgo }

// GlibcLoop returns -1: glibc is not built in.
func GlibcLoop(p unsafe.Pointer, n int64) int64 { return -1 }

// GlibcLock reports that glibc is not built in.
func GlibcLock(p unsafe.Pointer) error { return errNoCgo }

// GlibcUnlock reports that glibc is not built in.
func GlibcUnlock(p unsafe.Pointer) error { return errNoCgo }

// GlibcConsistent reports that glibc is not built in.
func GlibcConsistent(p unsafe.Pointer) error { return errNoCgo }

func glibcVersion() string { return "" }

func glibcContend(p unsafe.Pointer, k int, cs int64, lat []int64, counter *uint64) (int64, int64, error) {
	return 0, 0, errNoCgo
}

func glibcHandoff(p unsafe.Pointer, sh *int64, id int, n int, delay int64, lat []int64) ([]int64, error) {
	return nil, errNoCgo
}

func glibcRecover(p unsafe.Pointer, waiting *uint32) (int64, error) { return 0, errNoCgo }
