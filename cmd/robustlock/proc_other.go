//go:build !linux

package main

import "errors"

// lookupTask knows nothing off Linux: there is no /proc to ask.
func lookupTask(id int) task { return task{ID: id} }

// ownPIDNamespace is unknown off Linux.
func ownPIDNamespace() uint64 { return 0 }

// userName is unknown off Linux.
func userName(uid int) string { return "" }

// otherMappers cannot look off Linux.
func otherMappers(addr uintptr) ([]task, int, error) {
	return nil, 0, errors.New("no /proc to look for other processes mapping the segment in")
}
