//go:build linux && cgo

package robustlist_test

// Linking runtime/cgo makes every thread of this test binary a pthread
// with glibc's robust list already registered: the joined mode.
import _ "runtime/cgo"

const cgoBuild = true
