//go:build linux

package segment

// The publication protocol.
//
// Invariant: a file appears under a segment's name only by link(2) (or a
// rename that refuses to replace) of a file that is already complete
// (header, initialised mutexes, the caller's Init, and the magic written
// last). Neither replaces an existing name, so exactly one creator wins, and anyone who can open the name sees a
// whole segment. Opening is still full validation (validate_linux.go),
// because the directory may be shared with users who can plant anything.
//
// Open(name):
//
//  0. Check the directory and its ancestors (checkDir) unless TrustDir.
//  1. Unless CreateOnly, try to open the existing file. Found: validate,
//     map, done. Missing: create, if allowed (not OpenOnly, Size given).
//  2. Claim the name (see "The creation claim" below): wait while another
//     creator builds it, then go back to 1; build only with the claim, or
//     where it cannot be had.
//  3. Build a draft in a file nobody else can open:
//     a. preferred: an unnamed file, openat(dir, O_TMPFILE), after
//     checking that /proc/self/fd/N leads back to it (step 5a needs that);
//     b. fallback (no O_TMPFILE on this filesystem, no /proc, or forced by
//     tests): dir/.robustlock-tmp-NS-PID-START-RANDOM, created
//     O_CREAT|O_EXCL|O_NOFOLLOW. The leading dot keeps it out of the name
//     space (names cannot start with a dot), and NS, PID and START (the
//     creator's PID namespace, pid and start time) let the sweep tell
//     when its creator is dead: before creating one, a creator on this
//     path sweeps (a bounded number of) temporaries of dead creators.
//  4. Check the size against the memory cgroup (memlimit_linux.go), size
//     the file (fallocate in pieces, so a full /dev/shm is an error here
//     and not a SIGBUS later, and signals cannot stall it), map it, write
//     the header fields, Init every mutex, run the caller's Init on the
//     data (a panic becomes an error), and write the magic. Any failure: discard the draft, publish nothing.
//  5. Publish with one link:
//     a. linkat(AT_FDCWD, "/proc/self/fd/N", dir, name, AT_SYMLINK_FOLLOW);
//     b. renameat2(dir, temp, dir, name, RENAME_NOREPLACE); where the
//     filesystem lacks it, linkat(dir, temp, dir, name), then unlink the
//     temporary whatever the outcome (the segment then has two links for
//     a moment, and an Open in that moment gets ErrLinked).
//     EEXIST means another creator won: discard the draft (an O_TMPFILE
//     draft vanishes with its last descriptor) and go back to 1 to open the
//     winner's segment. ENOENT in 5b means a sweeper took our temporary
//     for a dead process's: start again.
//
// If the build fails (a full tmpfs, the memory limit), the creator looks
// at the name once more before reporting the error: a racer that built
// without a claim may have published it.
//
// A creator killed anywhere leaves nothing behind on path a but possibly
// its empty claim file, which the next creator of the name reuses and
// removes. On path b it leaves its temporary, which a later creator on
// that path in the same PID namespace sweeps once the creator is gone.

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
	"sync/atomic"
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
	if !c.trustDir {
		if err := checkDir(d, &c); err != nil {
			return fail("open", err)
		}
	}

	// The claim, once taken, is held until this Open has published (or
	// failed): racers for the same name wait in takeClaim meanwhile, then
	// find the segment in step 1. Goroutines of this process take turns
	// first (local, held to the end of Open), so that only one of them
	// sleeps in flock, holding an OS thread, per name.
	var cl *claim
	var local *localTurn
	defer func() { cl.release(); local.end() }()
	claims := 0

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
		if local == nil && !c.noClaim {
			var waited bool
			if local, waited = takeLocalTurn(d, name); waited {
				continue // another goroutine here was creating it: look again
			}
		}
		if cl == nil && claims < 8 && !c.noClaim {
			claims++
			var waited bool
			if cl, waited = takeClaim(d, name, &c); cl != nil || waited {
				if waited {
					// A builder killed between publishing and releasing
					// leaves its claim file: the waiters it woke remove it.
					tidyClaim(d, name, &c)
				}
				if c.createOnly && exists(d, name) {
					return fail("create", ErrExist)
				}
				// We waited for a builder, or took the claim after one:
				// look for its segment before building our own.
				continue
			}
			claims = 8 // no claim to be had: race as before
		}
		s, err := create(d, name, path, &c, cl)
		switch {
		case err == nil:
			s.repair = c.repair
			return s, nil
		case errors.Is(err, errLost) && c.createOnly:
			return fail("create", ErrExist)
		case errors.Is(err, errLost), errors.Is(err, errRetry):
			continue
		case !c.createOnly && !errors.Is(err, ErrInit):
			// Our build failed (a full tmpfs, say) but a racer's may
			// have succeeded: if the name is published now, use it. An
			// Init failure is the caller's own and is reported as is.
			if s, err2 := openExisting(d, name, path, &c); err2 == nil {
				return s, nil
			}
		}
		return fail("create", err)
	}
	return fail("open", errors.New("the name kept appearing and vanishing; gave up"))
}

var (
	errMissing = errors.New("no such segment")         // internal: name does not exist
	errLost    = errors.New("another creator won")     // internal: link found the name taken
	errRetry   = errors.New("temporary file vanished") // internal: start over
)

func openDir(dir string) (int, error) {
	d, err := retry(func() (int, error) { return unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) })
	if err != nil {
		return -1, fmt.Errorf("directory %s: %w", dir, err)
	}
	return d, nil
}

// create runs steps 2 to 5 of the protocol.
// A claim held (cl != nil) is released as soon as the segment is
// published, so that a creator killed right after leaves no claim file.
func create(d int, name, path string, c *config, cl *claim) (*Segment, error) {
	h := newHeader(c.size, c.mutexes, unix.Getpid(), pidNamespace(), time.Unix(0, time.Now().UnixNano()))
	if err := checkMemoryLimit(h.TotalSize); err != nil {
		return nil, err
	}
	dr, err := newDraft(d, c)
	if err != nil {
		return nil, err
	}
	defer dr.discard()
	if err := dr.fill(h, c.init); err != nil {
		return nil, err
	}
	if err := dr.publish(name); err != nil {
		return nil, err
	}
	cl.release()
	s, err := newSegment(name, path, true, h, dr.mem)
	if err != nil {
		return nil, err // cannot happen: the layout is ours
	}
	dr.mem = nil // the Segment owns the mapping now
	return s, nil
}

// exists reports whether anything is under name in d.
func exists(d int, name string) bool {
	var st unix.Stat_t
	return ignoringEINTR(func() error { return unix.Fstatat(d, name, &st, unix.AT_SYMLINK_NOFOLLOW) }) == nil
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
		fd, err := retry(func() (int, error) {
			return unix.Openat(d, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, mode)
		})
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
	// Only this path leaves temporaries behind (a creator killed before
	// publishing), so only this path sweeps them.
	sweep(d, c)
	for range 16 {
		tmp := tempName()
		fd, err := retry(func() (int, error) {
			return unix.Openat(d, tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		})
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
	if err := allocate(dr.fd, h.TotalSize); err != nil {
		if err != unix.EOPNOTSUPP {
			return fmt.Errorf("allocating %d bytes: %w", h.TotalSize, err)
		}
		if err := ignoringEINTR(func() error { return unix.Ftruncate(dr.fd, h.TotalSize) }); err != nil {
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
		err = ignoringEINTR(func() error {
			return unix.Linkat(unix.AT_FDCWD, procFD(dr.fd), dr.dir, name, unix.AT_SYMLINK_FOLLOW)
		})
	} else {
		// A rename that refuses to replace keeps the published file at
		// one link from the start (Open refuses files with more, see
		// AllowHardLinks); a link then an unlink is the fallback where
		// the filesystem has no RENAME_NOREPLACE.
		err = ignoringEINTR(func() error {
			return unix.Renameat2(dr.dir, dr.tmp, dr.dir, name, unix.RENAME_NOREPLACE)
		})
		if err == nil {
			dr.tmp = "" // nothing left to unlink
		} else if err == unix.EINVAL || err == unix.ENOSYS || err == unix.EOPNOTSUPP {
			err = ignoringEINTR(func() error { return unix.Linkat(dr.dir, dr.tmp, dr.dir, name, 0) })
		}
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

// Bounds on one sweep, so that a directory flooded with planted names
// costs each creation a fixed amount of work: a sweep reads at most
// sweepNames directory entries, stats at most sweepStats of those named
// like temporaries of this PID namespace, and probes at most sweepProbes
// creators for liveness (only for files that are ours). A flooded
// directory may therefore keep some of our stale temporaries longer;
// they are harmless (hidden names, their space aside).
const (
	sweepNames  = 4096
	sweepStats  = 256
	sweepProbes = 64
)

// sweepWork counts the sweep's work, for tests: entries read, files
// stat'ed, creators probed for liveness.
var sweepWork struct{ names, stats, probes atomic.Int64 }

// sweep is step 2: it unlinks the temporaries, owned by this user, whose
// creators were in this PID namespace and are gone. A pid that is alive
// but started at another time than the one recorded is a reused pid: its
// creator is gone too. Ownership is checked before liveness (a stat is
// cheaper than reading /proc, and others' files are never ours to sweep),
// and the work is bounded (sweepNames and the rest). Errors are ignored:
// sweeping is housekeeping.
func sweep(d int, c *config) {
	fd, err := retry(func() (int, error) {
		return unix.Openat(d, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	myNS, euid := pidNamespace(), uint32(unix.Geteuid())
	read, stats, probes := 0, 0, 0
	for read < sweepNames && stats < sweepStats && probes < sweepProbes {
		names, err := f.Readdirnames(min(512, sweepNames-read))
		read += len(names)
		sweepWork.names.Add(int64(len(names)))
		for _, n := range names {
			if stats >= sweepStats || probes >= sweepProbes {
				break
			}
			if seg, isClaim := strings.CutPrefix(n, claimPrefix); isClaim {
				// A claim left beside its published segment by a builder
				// killed in between: nobody will reuse it.
				if validName(seg) && exists(d, seg) {
					stats++
					sweepWork.stats.Add(1)
					tidyClaim(d, seg, c)
				}
				continue
			}
			ns, pid, start, ok := parseTempName(n)
			if !ok || ns != myNS {
				continue
			}
			stats++
			sweepWork.stats.Add(1)
			var st unix.Stat_t
			if unix.Fstatat(d, n, &st, unix.AT_SYMLINK_NOFOLLOW) != nil ||
				st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != euid {
				continue
			}
			probes++
			sweepWork.probes.Add(1)
			if dead(pid, start) {
				_ = unix.Unlinkat(d, n, 0)
			}
		}
		if err != nil || len(names) == 0 {
			return
		}
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

// Allocation (step 4) goes in pieces. Before the 2024 kernel fix "tmpfs:
// don't interrupt fallocate with EINTR" (so on 6.1 LTS), tmpfs's fallocate gives
// up with EINTR whenever any signal is pending, undoing the pages of that
// call, and Go programs always receive signals (the runtime's preemption,
// SIGCHLD, a user's signal.Notify). A plain retry of the whole range can
// then loop forever under a periodic signal shorter than the call; pieces
// keep what each completed call allocated, shrink (down to allocMin) after
// an interrupted one and grow back after a completed one, so every signal
// costs at most one piece.
const (
	allocMax   = 64 << 20 // bytes per fallocate call at most
	allocMin   = 64 << 10 // and at least, however often interrupted
	allocTries = 10000    // interrupted calls in a row at allocMin before giving up
)

// fallocate is unix.Fallocate; tests replace it to inject EINTR.
var fallocate = unix.Fallocate

// allocate reserves the first size bytes of fd (and makes them its size)
// with fallocate in pieces, resuming after an EINTR where the last
// completed piece ended. EOPNOTSUPP from the first piece means the
// filesystem cannot; any other error is returned as is.
func allocate(fd int, size int64) error {
	piece, off, streak := int64(allocMax), int64(0), 0
	for off < size {
		n := min(piece, size-off)
		switch err := fallocate(fd, 0, off, n); {
		case err == nil:
			off += n
			streak = 0
			piece = min(piece*2, allocMax)
		case err == unix.EINTR:
			if piece == allocMin {
				if streak++; streak >= allocTries {
					return fmt.Errorf("interrupted by signals %d times in a row at %d of %d bytes: %w", streak, off, size, err)
				}
			}
			piece = max(piece/2, allocMin)
		default:
			return err
		}
	}
	return nil
}

// ignoringEINTR calls f until it fails with something other than EINTR.
// Go installs its signal handlers with SA_RESTART, so most system calls
// restart by themselves; this covers those that do not (on some kernels
// and filesystems open, link, rename, flock and ftruncate can return
// EINTR to a process with a signal pending).
func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

// retry is ignoringEINTR for calls that return a value.
func retry[T any](f func() (T, error)) (T, error) {
	for {
		v, err := f()
		if err != unix.EINTR {
			return v, err
		}
	}
}

// The creation claim (the answer to racing creators each building a full
// copy, which on a small tmpfs can make them all fail).
//
// A creator that finds no segment tries for an exclusive flock on
// dir/.robustlock-claim-NAME (created if missing) without blocking. Got
// it: it checks that the name still leads to the file it locked (a holder
// unlinks the claim file before releasing, so one may lock a file that is
// gone), looks for the segment once more, and builds. Someone else holds
// it: it waits for a shared flock on the same file, which the kernel
// grants (to every waiter at once) when the builder releases or dies, then
// looks for the published segment again, and only if there is none (the
// builder failed or was killed) tries to claim again. It does the same when
// it finds the file it opened gone (its holder is done): a creator that
// kept trying on files that late arrivals keep creating and removing could
// run out of tries and build a copy of a segment published long before.
// The kernel drops a dead holder's flock, so a killed creator never blocks
// the others, and waiters sleep in flock without spinning.
//
// The claim is an optimisation, never a condition: if the claim file
// cannot be opened or locked, or is not a regular file with one link owned
// by a trusted user (someone else planted it), the creator goes ahead
// without it and the link(2) of step 5 still lets exactly one win. Its mode
// grants read (all flock needs) exactly to those the segment's Mode lets
// write, so nobody who could not build the segment can hold the claim and
// stall its creators. A holder that is alive but stuck (stopped, or in an
// Init that never returns) does stall them: they wait as they would wait
// for a lock it held.
const claimPrefix = ".robustlock-claim-"

type claim struct {
	dir  int
	fd   int
	name string
}

// takeClaim tries to become name's builder. It returns the claim if it
// now holds it. Otherwise, if another creator held it, it waits (a shared
// flock, so every waiter wakes at once) until that creator is done and
// returns waited: the caller looks for the published segment again, and
// may try to claim again if there is none. Neither: the claim cannot be
// had, and the caller races as before.
func takeClaim(d int, name string, c *config) (cl *claim, waited bool) {
	cn := claimPrefix + name
	w := uint32(c.mode.Perm()) & 0o222
	mode := w | w<<1
	if !claimable(d, cn, c) {
		return nil, false
	}
	fd, err := retry(func() (int, error) {
		return unix.Openat(d, cn, unix.O_RDONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, mode)
	})
	if err != nil {
		return nil, false
	}
	if testHookClaimOpened != nil {
		testHookClaimOpened()
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Nlink == 0 {
		// Its holder removed it after we opened it: a builder is done
		// (published, or failed). Look for its segment before claiming.
		unix.Close(fd)
		return nil, true
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 ||
		!(trustedOwner(int(st.Uid), c) || c.trustGroups && inGroups(int(st.Gid))) {
		unix.Close(fd)
		return nil, false
	}
	err = ignoringEINTR(func() error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) })
	if err == unix.EWOULDBLOCK {
		// Someone is building: wait until they are done (or dead).
		err = ignoringEINTR(func() error { return unix.Flock(fd, unix.LOCK_SH) })
		unix.Close(fd)
		return nil, err == nil
	}
	if err != nil {
		unix.Close(fd)
		return nil, false
	}
	var now unix.Stat_t
	if unix.Fstatat(d, cn, &now, unix.AT_SYMLINK_NOFOLLOW) == nil && now.Dev == st.Dev && now.Ino == st.Ino {
		return &claim{dir: d, fd: fd, name: cn}, false
	}
	unix.Close(fd) // removed (a builder is done) or tidied away since we opened it: as above
	return nil, true
}

// testHookClaimOpened, when set (by tests only), runs in takeClaim right
// after the claim file is opened.
var testHookClaimOpened func()

// Turns within the process: per directory and name, a token that one
// goroutine at a time holds from its first claim attempt to the end of
// its Open. The others park on the token's channel (no OS thread each,
// unlike a flock) and look for the segment again once they have it.
var localTurns struct {
	sync.Mutex
	m map[turnKey]*localTurn
}

type turnKey struct {
	dev, ino uint64
	name     string
}

type localTurn struct {
	key   turnKey
	token chan struct{} // holds one value while some goroutine has the turn
	refs  int           // goroutines holding or waiting; under localTurns
}

// takeLocalTurn returns name's turn once this goroutine has it, and
// whether it had to wait for another goroutine's. A nil turn (the
// directory cannot be stat'ed) means no turn: go on without.
func takeLocalTurn(d int, name string) (lt *localTurn, waited bool) {
	var st unix.Stat_t
	if unix.Fstat(d, &st) != nil {
		return nil, false
	}
	k := turnKey{uint64(st.Dev), uint64(st.Ino), name}
	localTurns.Lock()
	if localTurns.m == nil {
		localTurns.m = map[turnKey]*localTurn{}
	}
	lt = localTurns.m[k]
	if lt == nil {
		lt = &localTurn{key: k, token: make(chan struct{}, 1)}
		localTurns.m[k] = lt
	}
	lt.refs++
	localTurns.Unlock()
	select {
	case lt.token <- struct{}{}:
		return lt, false
	default:
	}
	lt.token <- struct{}{}
	return lt, true
}

// end gives the turn up. On a nil turn it does nothing.
func (lt *localTurn) end() {
	if lt == nil {
		return
	}
	<-lt.token
	localTurns.Lock()
	if lt.refs--; lt.refs == 0 {
		delete(localTurns.m, lt.key)
	}
	localTurns.Unlock()
}

// claimable reports whether the claim file cn is missing or a regular
// file a trusted user owns: it looks before anything is opened, so a
// planted FIFO or device is never opened (the descriptor is checked again
// after the open, in case the name was replaced in between).
func claimable(d int, cn string, c *config) bool {
	var st unix.Stat_t
	err := ignoringEINTR(func() error { return unix.Fstatat(d, cn, &st, unix.AT_SYMLINK_NOFOLLOW) })
	if err == unix.ENOENT {
		return true
	}
	return err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG &&
		(trustedOwner(int(st.Uid), c) || c.trustGroups && inGroups(int(st.Gid)))
}

// release removes the claim file and then drops the lock (in that order:
// see takeClaim's check). On a nil or released claim it does nothing.
func (cl *claim) release() {
	if cl == nil || cl.fd < 0 {
		return
	}
	_ = unix.Unlinkat(cl.dir, cl.name, 0)
	_ = unix.Close(cl.fd)
	cl.fd = -1
}

// tidyClaim removes name's claim file if it is a trusted one that nobody
// holds: the leftover of a builder killed after publishing (before that,
// the next creator reuses the file anyway).
func tidyClaim(d int, name string, c *config) {
	cn := claimPrefix + name
	if !claimable(d, cn, c) {
		return
	}
	fd, err := retry(func() (int, error) {
		return unix.Openat(d, cn, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	})
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var st, now unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 || !trustedOwner(int(st.Uid), c) {
		return
	}
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return // someone holds it: theirs to remove
	}
	if unix.Fstatat(d, cn, &now, unix.AT_SYMLINK_NOFOLLOW) == nil && now.Dev == st.Dev && now.Ino == st.Ino {
		_ = unix.Unlinkat(d, cn, 0)
	}
}

// removeForced is Remove with Force: unlink whatever regular file is
// under name, whatever it holds. It never follows a symbolic link and never
// removes a directory, FIFO, socket or device.
func removeForced(d int, name string, fail func(error) error) error {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstatat(d, name, &st, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
		if err == unix.ENOENT {
			return fail(ErrNotExist)
		}
		return fail(err)
	}
	if err := checkFile(&st, nil, -1, ""); err != nil {
		return fail(err)
	}
	if err := ignoringEINTR(func() error { return unix.Unlinkat(d, name, 0) }); err != nil {
		if err == unix.ENOENT {
			return fail(ErrNotExist)
		}
		return fail(err)
	}
	return nil
}
