//go:build linux

package robustlock_test

import (
	"context"
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

// Do takes the lock, tells fn whether the previous owner died (so fn
// repairs first), marks the mutex consistent only if fn succeeded, and
// unlocks on every path. Here the owner that dies is a goroutine that
// exits holding the lock: its thread ends, as a killed process's would.
func ExampleMutex_Do() {
	mem, _ := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	defer unix.Munmap(mem)
	m, _ := robustlock.At(mem, 0)
	m.Init()
	balance := mem[64:72] // guarded by m: both halves always equal

	died := make(chan struct{})
	go func() {
		m.Lock()
		balance[0] = 7 // half an update, then the goroutine exits holding m
		close(died)
	}()
	<-died

	for i := 0; i < 2; i++ {
		err := m.Do(context.Background(), func(recovered bool) error {
			if recovered { // repair: roll the half-done update back
				fmt.Println("repairing")
				balance[0] = balance[4]
			}
			balance[0]++
			balance[4]++
			return nil
		})
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println(balance[0], balance[4], m.State())
	// Output:
	// repairing
	// 2 2 free
}

// Locker adapts a Mutex for code that takes a sync.Locker, such as
// sync.NewCond; errors become panics, and an owner death runs repair.
func ExampleMutex_Locker() {
	mem, _ := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	defer unix.Munmap(mem)
	m, _ := robustlock.At(mem, 0)
	m.Init()

	l := m.Locker(func() error { return nil }) // nothing to repair here
	l.Lock()
	mem[64]++
	l.Unlock()
	fmt.Println(mem[64])
	// Output: 1
}
