package robustlock

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock/internal/futex"
)

// exitWatch waits, as a goroutine in the runtime's poller, for a thread to
// exit: a pidfd with PIDFD_THREAD (Linux 6.9+) becomes readable then. On
// that it marks itself gone and wakes every sleeper on the word, so the
// delegate asleep there probes at once instead of at its next deadline.
type exitWatch struct {
	f    *os.File
	gone atomic.Bool
}

// pidfdThreads is cleared once pidfd_open has refused PIDFD_THREAD (older
// kernels: EINVAL; seccomp or no pidfds: ENOSYS, EPERM): the probe alone
// serves from then on.
var pidfdThreads atomic.Bool

func init() { pidfdThreads.Store(true) }

// watchExit starts watching tid for exit, or returns nil where it cannot.
func watchExit(tid uint32, word *uint32) *exitWatch {
	if !pidfdThreads.Load() {
		return nil
	}
	fd, err := unix.PidfdOpen(int(tid), unix.PIDFD_THREAD|unix.PIDFD_NONBLOCK)
	if err != nil {
		if !errors.Is(err, syscall.ESRCH) {
			pidfdThreads.Store(false)
		}
		return nil // ESRCH: gone already, which the next probe finds
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	w := &exitWatch{f: f}
	staleWatches.Add(1)
	go func() {
		polled := false
		err := rc.Read(func(uintptr) bool {
			// The first call only arms the poller; the next one comes
			// when the pidfd is readable: the thread has exited.
			done := polled
			polled = true
			return done
		})
		if err == nil {
			w.gone.Store(true)
			staleWakes.Add(1)               // before the wake, which may end the wait it counts
			futex.Wake(word, futex.WakeAll) // EFAULT at worst, if unmapped since
		}
	}()
	return w
}

// exited reports whether the watched thread has exited.
func (w *exitWatch) exited() bool { return w != nil && w.gone.Load() }

// stop ends the watch; its goroutine returns.
func (w *exitWatch) stop() {
	if w != nil {
		w.f.Close()
	}
}

// zombie reports whether /proc says the task has exited but was not yet
// reaped (state Z or X in /proc/TID/stat). Without /proc it says no.
func zombie(tid uint32) bool {
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(tid), 10) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}
