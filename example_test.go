//go:build linux

package robustlock_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
)

// A Mutex lives in memory every process maps. Here one process maps a file
// in a temporary directory; package segment does this by name, with safe
// creation, for unrelated processes.
func ExampleMutex() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "state")
	os.WriteFile(path, make([]byte, 4096), 0o600)
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	mem, _ := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	f.Close()
	defer unix.Munmap(mem)

	m, err := robustlock.At(mem, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	m.Init() // once, by whoever creates the memory

	switch err := m.Lock(); {
	case errors.Is(err, robustlock.ErrOwnerDied):
		// The previous holder died mid-update: repair the data, then
		// declare it consistent before unlocking.
		m.MarkConsistent()
	case err != nil:
		fmt.Println(err)
		return
	}
	mem[64]++ // the guarded update
	m.Unlock()
	fmt.Println(mem[64], m.State())
	// Output: 1 free
}

// TryLock reports a lock held elsewhere instead of waiting.
func ExampleMutex_TryLock() {
	mem, _ := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	defer unix.Munmap(mem)
	m, _ := robustlock.At(mem, 0)
	m.Init()

	m.Lock()
	done := make(chan error)
	go func() { done <- m.TryLock() }() // another goroutine, so another thread
	fmt.Println(<-done)
	m.Unlock()
	// Output: robustlock: lock is held
}
