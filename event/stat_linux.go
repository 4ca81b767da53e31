//go:build linux

package event

import "golang.org/x/sys/unix"

// statID identifies the file at path (not following a symbolic link).
func statID(path string) (fileID, bool) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), st.Ino}, true
}
