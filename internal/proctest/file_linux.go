package proctest

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// MapFile maps the whole file at path MAP_SHARED, read-write: how helper
// processes reach the memory a test shares with them.
func MapFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

// SharedFile creates a zeroed file of size bytes named name in a fresh
// temporary directory and maps it with MapFile; the mapping is undone when
// the test ends. It returns the file's path, for helpers, and the memory.
func SharedFile(t testing.TB, name string, size int) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	mem, err := MapFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	return path, mem
}
