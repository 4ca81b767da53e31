//go:build linux

package segment

import "golang.org/x/sys/unix"

func unmap(mem []byte) error { return unix.Munmap(mem) }
