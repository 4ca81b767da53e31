//go:build !linux

package event

// statID: channels exist only on Linux.
func statID(path string) (fileID, bool) { return fileID{}, false }
