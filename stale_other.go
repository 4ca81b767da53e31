//go:build !linux

package robustlock

// exitWatch has nothing to watch with off Linux.
type exitWatch struct{}

func watchExit(tid uint32, word *uint32) *exitWatch { return nil }
func (w *exitWatch) exited() bool                   { return false }
func (w *exitWatch) stop()                          {}

// zombie has no /proc to ask off Linux.
func zombie(tid uint32) bool { return false }
