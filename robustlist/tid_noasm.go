//go:build linux && !amd64 && !arm64

package robustlist

import "unsafe"

func getg() unsafe.Pointer { return nil }

const haveGetg = false
