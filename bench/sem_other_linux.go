//go:build linux && !(amd64 || arm64 || arm || riscv64 || loong64 || mips64 || mips64le)

package bench

import "errors"

// Here SysV IPC goes through the ipc(2) multiplexer, which this package
// does not call: the sysv-sem contender is reported unavailable.
var errNoSem = errors.New("SysV semaphores not wired up on this architecture")

func semop(id int, op int16) error { return errNoSem }
func newSem() (int, error)         { return -1, errNoSem }
func setSem(id int) error          { return errNoSem }
func removeSem(id int)             {}
