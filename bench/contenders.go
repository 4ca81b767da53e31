package bench

import "errors"

var errNoCgo = errors.New("bench: glibc contenders need cgo on linux")

// The contenders, by the names used in flags, tables and JSON.
const (
	cRobust  = "robustlock"
	cGlibcC  = "glibc-C"
	cGlibcGo = "glibc-cgo"
	cFlock   = "flock"
	cOFD     = "fcntl-OFD"
	cSysV    = "sysv-sem"
	cSync    = "sync.Mutex"
)

// contender describes one lock under test.
type contender struct {
	Name     string `json:"name"`
	What     string `json:"what"`
	Shared   bool   `json:"process_shared"` // usable across processes
	Robust   bool   `json:"robust"`         // the next locker learns that a holder died
	Syscalls bool   `json:"syscalls"`       // every lock and unlock enters the kernel
	NeedsCgo bool   `json:"needs_cgo"`
}

var contenders = []contender{
	{Name: cRobust, What: "robustlock.Mutex, pure Go (futex, robust list)", Shared: true, Robust: true},
	{Name: cGlibcC, What: "glibc robust pshared pthread_mutex, lock+unlock loop in C", Shared: true, Robust: true, NeedsCgo: true},
	{Name: cGlibcGo, What: "the same glibc calls from Go, one cgo call each, thread pinned", Shared: true, Robust: true, NeedsCgo: true},
	{Name: cFlock, What: "flock(2) LOCK_EX on a lock file", Shared: true, Syscalls: true},
	{Name: cOFD, What: "fcntl(2) F_OFD_SETLKW write lock on a lock file", Shared: true, Syscalls: true},
	{Name: cSysV, What: "SysV semaphore, semop -1/+1 with SEM_UNDO", Shared: true, Syscalls: true},
	{Name: cSync, What: "sync.Mutex (one process only, not robust: the floor)"},
}

func contenderByName(name string) (contender, bool) {
	for _, c := range contenders {
		if c.Name == name {
			return c, true
		}
	}
	return contender{}, false
}

// unavailable says why c cannot run in this binary, or "" if it can.
//
//lint:ignore U1000 used by the Linux suite; unused where it is not built
func (c contender) unavailable() string {
	if c.NeedsCgo && !HaveGlibc {
		return "unavailable: built without cgo"
	}
	return ""
}
