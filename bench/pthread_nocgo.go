//go:build !cgo || !linux

package bench

import (
	"errors"
	"unsafe"
)

// HaveGlibc reports whether the glibc contenders are built in (cgo).
const HaveGlibc = false

var errNoCgo = errors.New("bench: glibc contenders need cgo on linux")

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
