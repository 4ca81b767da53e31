//go:build linux && (amd64 || arm64 || arm || riscv64 || loong64 || mips64 || mips64le)

package bench

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

type sembuf struct {
	num uint16
	op  int16
	flg int16
}

const semUndo = 0x1000

func semop(id int, op int16) error {
	b := sembuf{0, op, semUndo}
	for {
		_, _, e := unix.Syscall(unix.SYS_SEMOP, uintptr(id), uintptr(unsafe.Pointer(&b)), 1)
		if e != unix.EINTR {
			if e != 0 {
				return e
			}
			return nil
		}
	}
}

const (
	ipcPrivate = 0
	ipcRmid    = 0
	semSetval  = 16
)

// newSem creates a private SysV semaphore set of one, value 1.
func newSem() (int, error) {
	id, _, e := unix.Syscall(unix.SYS_SEMGET, ipcPrivate, 1, 0o600|unix.IPC_CREAT)
	if e != 0 {
		return -1, fmt.Errorf("semget: %w", e)
	}
	if err := setSem(int(id)); err != nil {
		removeSem(int(id))
		return -1, err
	}
	return int(id), nil
}

func setSem(id int) error {
	if _, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, semSetval, 1, 0, 0); e != 0 {
		return fmt.Errorf("semctl SETVAL: %w", e)
	}
	return nil
}

func removeSem(id int) {
	unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, ipcRmid, 0, 0, 0)
}
