//go:build linux

package segment

// The publication protocol.
//
// Invariant: a file appears under a segment's name only by link(2) of a
// file that is already complete (header, initialised mutexes, the caller's
// Init, and the magic written last). link never replaces an existing name,
// so exactly one creator wins, and anyone who can open the name sees a
// whole segment. Opening is still full validation (validate_linux.go),
// because the directory may be shared with users who can plant anything.
//
// Open(name):
//
//  1. Unless CreateOnly, try to open the existing file. Found: validate,
//     map, done. Missing: create, if allowed (not OpenOnly, Size given).
//  2. Sweep the directory for temporaries (step 3b) left by dead processes.
//  3. Build a draft in a file nobody else can open:
//     a. preferred: an unnamed file, openat(dir, O_TMPFILE), after
//     checking that /proc/self/fd/N leads back to it (step 5a needs that);
//     b. fallback (no O_TMPFILE on this filesystem, no /proc, or forced by
//     tests): dir/.robustlock-tmp-NS-PID-START-RANDOM, created
//     O_CREAT|O_EXCL|O_NOFOLLOW. The leading dot keeps it out of the name
//     space (names cannot start with a dot), and NS, PID and START (the
//     creator's PID namespace, pid and start time) let step 2 tell when its
//     creator is dead.
//  4. Size it (fallocate, so a full /dev/shm is an error here and not a
//     SIGBUS later), map it, write the header fields, Init every mutex, run
//     the caller's Init on the data (a panic becomes an error), and write
//     the magic. Any failure: discard the draft, publish nothing.
//  5. Publish with one link:
//     a. linkat(AT_FDCWD, "/proc/self/fd/N", dir, name, AT_SYMLINK_FOLLOW);
//     b. linkat(dir, temp, dir, name), then unlink the temporary whatever
//     the outcome.
//     EEXIST means another creator won: discard the draft (an O_TMPFILE
//     draft vanishes with its last descriptor) and go back to 1 to open the
//     winner's segment. ENOENT in 5b means a sweeper took our temporary
//     for a dead process's: start again.
//
// A creator killed anywhere leaves nothing behind on path a. On path b it
// leaves its temporary, which the next creator in the same PID namespace
// sweeps once the creator is gone; killed between link and unlink, the
// segment itself is already complete and published.

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
)

// Open opens the segment called name in the directory (Dir, default
// /dev/shm), or, if there is none, creates it and publishes it atomically:
// Created then reports true. Without a Size option Open does not create.
// See the package documentation for the protocol and the validation an
// existing file goes through; every failure is an *Error wrapping one of
// the Err* causes, and a failed Open never changes a file it did not
// create.
func Open(name string, opts ...Option) (*Segment, error) {
	c := newConfig(opts)
	path := filepath.Join(c.dir, name)
	fail := func(op string, err error) (*Segment, error) {
		return nil, &Error{Op: op, Name: name, Path: path, Err: err}
	}
	if !validName(name) {
		return fail("open", detail(ErrBadName, "%q", name))
	}
	if err := c.check(); err != nil {
		return fail("open", err)
	}
	if c.createOnly && !c.sizeSet {
		return fail("open", detail(ErrInvalidOption, "CreateOnly needs Size"))
	}
	d, err := openDir(c.dir)
	if err != nil {
		return fail("open", err)
	}
	defer unix.Close(d)

	// Each retry means the name appeared or vanished between two steps
	// (a concurrent Remove); a few are normal, endless ones are not.
	for range 64 {
		if !c.createOnly {
			s, err := openExisting(d, name, path, &c)
			switch {
			case err == nil:
				s.repair = c.repair
				return s, nil
			case !errors.Is(err, errMissing):
				return fail("open", err)
			case c.openOnly || !c.sizeSet:
				return fail("open", ErrNotExist)
			}
		}
		s, err := create(d, name, path, &c)
		switch {
		case err == nil:
			s.repair = c.repair
			return s, nil
		case errors.Is(err, errLost) && c.createOnly:
			return fail("create", ErrExist)
		case errors.Is(err, errLost), errors.Is(err, errRetry):
			continue
		default:
			return fail("create", err)
		}
	}
	return fail("open", errors.New("the name kept appearing and vanishing; gave up"))
}

var (
	errMissing = errors.New("no such segment")         // internal: name does not exist
	errLost    = errors.New("another creator won")     // internal: link found the name taken
	errRetry   = errors.New("temporary file vanished") // internal: start over
)

func openDir(dir string) (int, error) {
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("directory %s: %w", dir, err)
	}
	return d, nil
}

// create runs steps 2 to 5 of the protocol.
func create(d int, name, path string, c *config) (*Segment, error) {
	sweep(d)
	dr, err := newDraft(d, c)
	if err != nil {
		return nil, err
	}
	defer dr.discard()
	h := newHeader(c.size, c.mutexes, unix.Getpid(), pidNamespace(), time.Unix(0, time.Now().UnixNano()))
	if err := dr.fill(h, c.init); err != nil {
		return nil, err
	}
	if err := dr.publish(name); err != nil {
		return nil, err
	}
	s, err := newSegment(name, path, true, h, dr.mem)
	if err != nil {
		return nil, err // cannot happen: the layout is ours
	}
	dr.mem = nil // the Segment owns the mapping now
	return s, nil
}

// A draft is a segment under construction, in a file only its creator can
// reach.
type draft struct {
	dir int
	fd  int
	tmp string // the fallback's temporary name; "" for an O_TMPFILE draft
	mem []byte
}

// newDraft is step 3.
func newDraft(d int, c *config) (*draft, error) {
	mode := uint32(c.mode.Perm())
	if !c.fallbackOnly {
		fd, err := unix.Openat(d, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, mode)
		switch {
		case err == nil && procFDWorks(fd):
			return &draft{dir: d, fd: fd}, nil
		case err == nil:
			unix.Close(fd)
		case err == unix.EOPNOTSUPP || err == unix.EISDIR || err == unix.EINVAL:
			// No O_TMPFILE here (EISDIR: a kernel that predates it).
		default:
			return nil, fmt.Errorf("creating an unnamed file: %w", err)
		}
	}
	for range 16 {
		tmp := tempName()
		fd, err := unix.Openat(d, tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("creating a temporary file: %w", err)
		}
		return &draft{dir: d, fd: fd, tmp: tmp}, nil
	}
	return nil, errors.New("creating a temporary file: every random name was taken")
}

// procFDWorks reports whether /proc/self/fd/fd leads to fd's file, which
// the O_TMPFILE publication needs.
func procFDWorks(fd int) bool {
	var a, b unix.Stat_t
	if unix.Fstat(fd, &a) != nil || unix.Stat(procFD(fd), &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

func procFD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// fill is step 4.
func (dr *draft) fill(h Header, initFn func([]byte) error) error {
	if err := unix.Fallocate(dr.fd, 0, 0, h.TotalSize); err != nil {
		if err != unix.EOPNOTSUPP {
			return fmt.Errorf("allocating %d bytes: %w", h.TotalSize, err)
		}
		if err := unix.Ftruncate(dr.fd, h.TotalSize); err != nil {
			return fmt.Errorf("sizing to %d bytes: %w", h.TotalSize, err)
		}
	}
	mem, err := unix.Mmap(dr.fd, 0, int(h.TotalSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mapping %d bytes: %w", h.TotalSize, err)
	}
	dr.mem = mem
	h.putFields(mem)
	for i := range h.MutexCount {
		m, err := robustlock.At(mem, int(h.MutexOff(i)))
		if err != nil {
			return fmt.Errorf("mutex %d: %w", i, err)
		}
		m.Init()
	}
	if initFn != nil {
		if err := runInit(initFn, mem[h.DataOffset:h.TotalSize:h.TotalSize]); err != nil {
			return err
		}
	}
	putMagic(mem)
	return nil
}

// runInit calls the caller's Init, turning a panic into an error.
func runInit(fn func([]byte) error, data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = fmt.Errorf("%w: panic: %w", ErrInit, e)
			} else {
				err = fmt.Errorf("%w: panic: %v", ErrInit, r)
			}
		}
	}()
	if e := fn(data); e != nil {
		return fmt.Errorf("%w: %w", ErrInit, e)
	}
	return nil
}

// publish is step 5.
func (dr *draft) publish(name string) error {
	var err error
	if dr.tmp == "" {
		err = unix.Linkat(unix.AT_FDCWD, procFD(dr.fd), dr.dir, name, unix.AT_SYMLINK_FOLLOW)
	} else {
		err = unix.Linkat(dr.dir, dr.tmp, dr.dir, name, 0)
		if err == unix.ENOENT {
			return errRetry
		}
	}
	if err == unix.EEXIST {
		return errLost
	}
	if err != nil {
		return fmt.Errorf("publishing: %w", err)
	}
	return nil
}

// discard releases whatever the draft still holds: its mapping (unless a
// Segment took it), its temporary name and its descriptor.
func (dr *draft) discard() {
	if dr.mem != nil {
		_ = unix.Munmap(dr.mem)
		dr.mem = nil
	}
	if dr.tmp != "" {
		_ = unix.Unlinkat(dr.dir, dr.tmp, 0)
	}
	_ = unix.Close(dr.fd)
}

// Temporaries of the fallback path: tmpPrefix NS-PID-START-RANDOM.
const tmpPrefix = ".robustlock-tmp-"

func tempName() string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%s%d-%d-%d-%016x", tmpPrefix, pidNamespace(), unix.Getpid(),
		selfStart(), binary.LittleEndian.Uint64(r[:]))
}

// parseTempName returns the creator recorded in a temporary's name.
func parseTempName(n string) (ns uint64, pid int, start uint64, ok bool) {
	rest, found := strings.CutPrefix(n, tmpPrefix)
	if !found {
		return 0, 0, 0, false
	}
	f := strings.Split(rest, "-")
	if len(f) != 4 {
		return 0, 0, 0, false
	}
	ns, err1 := strconv.ParseUint(f[0], 10, 64)
	pid, err2 := strconv.Atoi(f[1])
	start, err3 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || pid <= 0 {
		return 0, 0, 0, false
	}
	return ns, pid, start, true
}

// sweep is step 2: it unlinks the temporaries, owned by this user, whose
// creators were in this PID namespace and are gone. A pid that is alive
// but started at another time than the one recorded is a reused pid: its
// creator is gone too. Errors are ignored: sweeping is housekeeping.
func sweep(d int) {
	fd, err := unix.Openat(d, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	myNS, euid := pidNamespace(), uint32(unix.Geteuid())
	for _, n := range names {
		ns, pid, start, ok := parseTempName(n)
		if !ok || ns != myNS || !dead(pid, start) {
			continue
		}
		var st unix.Stat_t
		if unix.Fstatat(d, n, &st, unix.AT_SYMLINK_NOFOLLOW) != nil ||
			st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != euid {
			continue
		}
		_ = unix.Unlinkat(d, n, 0)
	}
}

// dead reports whether the process pid that started at start (clock
// ticks after boot; 0 if unknown) is certainly gone.
func dead(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	if unix.Kill(pid, 0) == unix.ESRCH {
		return true
	}
	if start == 0 {
		return false
	}
	now, ok := procStart(pid)
	return ok && now != start
}

// pidNamespace returns the inode of this process's PID namespace: that of
// /proc/self/ns/pid, or, where /proc is not mounted, of the namespace file
// a pidfd of this process hands out (PIDFD_GET_PID_NAMESPACE, Linux 6.11
// and later; the same inode). 0 when neither can tell.
var pidNamespace = sync.OnceValue(func() uint64 {
	var st unix.Stat_t
	if unix.Stat("/proc/self/ns/pid", &st) == nil {
		return st.Ino
	}
	pidfd, err := unix.PidfdOpen(unix.Getpid(), 0)
	if err != nil {
		return 0
	}
	defer unix.Close(pidfd)
	const pidfdGetPIDNamespace = 0xff05 // _IO(PIDFS_IOCTL_MAGIC 0xFF, 5)
	ns, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(pidfd), pidfdGetPIDNamespace, 0)
	if e != 0 {
		return 0
	}
	defer unix.Close(int(ns))
	if unix.Fstat(int(ns), &st) != nil {
		return 0
	}
	return st.Ino
})

// selfStart is this process's start time, in clock ticks after boot, or 0.
var selfStart = sync.OnceValue(func() uint64 {
	s, _ := procStart(unix.Getpid())
	return s
})

// procStart reads field 22 (starttime) of /proc/PID/stat.
func procStart(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields after the last ')' start at field 3.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	return v, err == nil
}
