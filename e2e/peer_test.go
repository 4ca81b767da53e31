//go:build linux

package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/internal/proctest"
	"github.com/futexlab/robustlock/segment"
)

// The Go peer speaks testdata/peer.c's protocol (see the comment at its
// top), so a test can drive a C process and a Go process with the same
// commands and compare their answers.
func init() { helpers["peer"] = goPeer }

// unlockAnswer is what peer p answers to "unlock" after an EOWNERDEAD it
// did (mark) or did not mark consistent: glibc's unlock returns 0 either
// way, Go's Unlock says ErrUnlockedInconsistent (ENOTRECOVERABLE) when it
// made the mutex not recoverable.
func unlockAnswer(p *proc, mark bool) string {
	if !mark && strings.HasPrefix(p.String(), "go-") {
		return "ENOTRECOVERABLE"
	}
	return "ok"
}

// errName names err as peer.c names errnos.
func errName(err error) string {
	var re *robustlock.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &re):
		return errnoName(re.Errno())
	case errors.Is(err, context.DeadlineExceeded):
		return "ETIMEDOUT"
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

func errnoName(e syscall.Errno) string {
	switch e {
	case 0:
		return "ok"
	case syscall.EOWNERDEAD:
		return "EOWNERDEAD"
	case syscall.ENOTRECOVERABLE:
		return "ENOTRECOVERABLE"
	case syscall.EBUSY:
		return "EBUSY"
	case syscall.EDEADLK:
		return "EDEADLK"
	case syscall.EPERM:
		return "EPERM"
	case syscall.EINVAL:
		return "EINVAL"
	case syscall.ETIMEDOUT:
		return "ETIMEDOUT"
	case syscall.ENOSYS:
		return "ENOSYS"
	}
	return fmt.Sprintf("errno%d", int(e))
}

// openTarget maps what a target names and returns the mutex and the
// 64-bit counter that goes with it.
func openTarget(args []string) (*robustlock.Mutex, *int64, error) {
	if len(args) < 2 {
		return nil, nil, fmt.Errorf("bad target %q", args)
	}
	arg := func(i int) int {
		if len(args) <= i {
			return 0
		}
		n, _ := strconv.Atoi(args[i])
		return n
	}
	var seg *segment.Segment
	var err error
	switch args[0] {
	case "raw":
		mem, err := proctest.MapFile(args[1])
		if err != nil {
			return nil, nil, err
		}
		off := arg(2)
		m, err := robustlock.At(mem, off)
		if err != nil {
			return nil, nil, err
		}
		return m, (*int64)(unsafe.Pointer(&mem[off+64])), nil
	case "seg":
		seg, err = segment.Open(filepath.Base(args[1]), segment.Dir(filepath.Dir(args[1])), segment.OpenOnly())
	case "shm":
		seg, err = segment.Open(strings.TrimPrefix(args[1], "/"), segment.OpenOnly())
	default:
		return nil, nil, fmt.Errorf("bad target %q", args)
	}
	if err != nil {
		return nil, nil, err
	}
	m, err := seg.MutexN(arg(2))
	if err != nil {
		return nil, nil, err
	}
	return m, (*int64)(unsafe.Pointer(&seg.Data()[0])), nil
}

func goPeer(args []string) int {
	m, counter, err := openTarget(args)
	if err != nil {
		fmt.Println("fatal", err)
		return 2
	}
	// The main goroutine runs every command on the main thread (init
	// locked it there), as the C peer's main thread does: exec from any
	// other thread would not release the lock (TestExecFromOtherThread).
	return peerLoop(m, counter)
}

func peerLoop(m *robustlock.Mutex, counter *int64) int {
	fmt.Printf("ready %d\n", unix.Gettid())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		arg := ""
		if len(f) > 1 {
			arg = f[1]
		}
		switch f[0] {
		case "lock":
			fmt.Println(errName(m.Lock()))
		case "trylock":
			fmt.Println(errName(m.TryLock()))
		case "timedlock":
			ms, _ := strconv.Atoi(arg)
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(ms)*time.Millisecond)
			fmt.Println(errName(m.LockContext(ctx)))
			cancel()
		case "unlock":
			fmt.Println(errName(m.Unlock()))
		case "consistent":
			fmt.Println(errName(m.MarkConsistent()))
		case "init":
			if arg != "" && arg != "robust" {
				fmt.Println("EINVAL")
				continue
			}
			m.Init()
			fmt.Println("ok")
		case "incr":
			n, _ := strconv.Atoi(arg)
			fmt.Println(errName(incr(m, counter, n)))
		case "get":
			fmt.Println(*counter)
		case "set":
			v, _ := strconv.ParseInt(arg, 0, 64)
			*counter = v
			fmt.Println("ok")
		case "tid":
			fmt.Println(unix.Gettid())
		case "die":
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		case "exec":
			// exec runs the kernel's robust-list walk, as exit does.
			err := syscall.Exec("/bin/true", []string{"true"}, nil)
			fmt.Println("exec:", err)
			return 2
		case "threadexec":
			go func() {
				// Lock on a thread other than the main one, and exec from it.
				fmt.Println(errName(m.Lock()), unix.Gettid())
				err := syscall.Exec("/bin/true", []string{"true"}, nil)
				fmt.Println("exec:", err)
				os.Exit(2)
			}()
			select {}
		case "threaddie":
			type res struct {
				err error
				tid int
			}
			r := make(chan res)
			go func() { r <- res{m.Lock(), unix.Gettid()} }() // returns holding: its thread ends
			x := <-r
			// Answer once the thread is gone, as pthread_join does for C.
			for i := 0; i < 60000; i++ {
				if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", x.tid)); err != nil {
					break
				}
				time.Sleep(time.Millisecond)
			}
			fmt.Println(errName(x.err))
		case "dump":
			w := (*[robustlock.Size / 4]uint32)(unsafe.Pointer(m))
			var s []string
			for _, x := range w {
				s = append(s, fmt.Sprintf("%08x", x))
			}
			fmt.Println(strings.Join(s, " "))
		case "exit":
			return 0
		default:
			fmt.Println("unknown", f[0])
		}
	}
	return 0
}

// incr does n read-pause-write increments of *counter, each under m,
// recovering owner deaths; a lost update shows in the final count.
func incr(m *robustlock.Mutex, counter *int64, n int) error {
	for i := 0; i < n; i++ {
		err := m.Lock()
		if errors.Is(err, robustlock.ErrOwnerDied) {
			err = m.MarkConsistent()
		}
		if err != nil {
			return err
		}
		v := *counter
		if i%64 == 0 {
			runtime.Gosched() // widen the window a broken lock would show
		}
		*counter = v + 1
		if err := m.Unlock(); err != nil {
			return err
		}
	}
	return nil
}
