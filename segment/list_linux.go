//go:build linux

package segment

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
)

// Stat describes the segment called name without opening it for use: the
// file is read, never written or mapped, and its mutexes' states are read
// without locking them. The header is validated as Open validates it, but
// neither the owner nor the PID namespace is checked (both are reported),
// so Stat can inspect other users' segments it may read.
func Stat(name string, opts ...Option) (Info, error) {
	c := newConfig(opts)
	path := filepath.Join(c.dir, name)
	fail := func(err error) (Info, error) {
		return Info{}, &Error{Op: "stat", Name: name, Path: path, Err: err}
	}
	if !validName(name) {
		return fail(detail(ErrBadName, "%q", name))
	}
	if err := c.check(); err != nil {
		return fail(err)
	}
	d, err := openDir(c.dir)
	if err != nil {
		return fail(err)
	}
	defer unix.Close(d)
	info, err := statAt(d, name, path)
	if errors.Is(err, errMissing) {
		err = ErrNotExist
	}
	if err != nil {
		return fail(err)
	}
	return info, nil
}

// List describes every segment in the directory (Dir, default /dev/shm),
// sorted by name, as Stat does. Files that are not segments, or that this
// process cannot read, are left out, as are names a segment cannot have
// (this package's temporaries among them), and so are damaged segments:
// Walk reports those, and reads a bounded amount of each file, where List
// reads every mutex the header claims.
func List(opts ...Option) ([]Info, error) {
	c := newConfig(opts)
	d, names, err := readDir(&c)
	if err != nil {
		return nil, &Error{Op: "list", Path: c.dir, Err: err}
	}
	defer unix.Close(d)
	infos := []Info{}
	for _, n := range names {
		if info, err := statAt(d, n, filepath.Join(c.dir, n)); err == nil {
			infos = append(infos, info)
		}
	}
	return infos, nil
}

// Walk calls fn with each segment in the directory (Dir, default
// /dev/shm), in name order, and stops at the first error fn returns, which
// Walk then returns. Like List it reads files without opening them for
// use, and leaves out files that do not start with the segment magic (or
// that this process cannot open) and names a segment cannot have; unlike
// List it reports a file that starts with the magic but cannot be read as
// a segment (truncated, corrupt, another version) as an Entry with Err
// set, and it bounds the work per file: the header, then at most
// ScanBudget bytes of mutexes, read in large blocks, with the holes of a
// sparse file skipped. A file shorter than the magic cannot be told from
// any other short file and is left out.
//
// Walk reads files with pread, never through a mapping: a file truncated
// under it costs an Entry.Err, never a SIGBUS.
func Walk(fn func(Entry) error, opts ...Option) error {
	c := newConfig(opts)
	d, names, err := readDir(&c)
	if err != nil {
		return &Error{Op: "list", Path: c.dir, Err: err}
	}
	defer unix.Close(d)
	for _, n := range names {
		e, ok := entryAt(d, n, filepath.Join(c.dir, n))
		if !ok {
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// readDir opens c's directory and returns it with the names in it that a
// segment may have, sorted.
func readDir(c *config) (int, []string, error) {
	if err := c.check(); err != nil {
		return -1, nil, err
	}
	d, err := openDir(c.dir)
	if err != nil {
		return -1, nil, err
	}
	fd, err := unix.Openat(d, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(d)
		return -1, nil, err
	}
	f := os.NewFile(uintptr(fd), c.dir)
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		unix.Close(d)
		return -1, nil, err
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !validName(n) })
	slices.Sort(names)
	return d, names, nil
}

// entryAt is Walk's look at one name in d. ok is false when the name is
// left out: not a regular file this process can open, or not starting with
// the magic.
func entryAt(d int, name, path string) (e Entry, ok bool) {
	e = Entry{Name: name, Path: path}
	fd, size, err := openFile(d, name, unix.O_RDONLY, nil)
	if err != nil {
		return e, false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return e, false
	}
	e.UID, e.Mode = int(st.Uid), fs.FileMode(st.Mode&0o777)
	fail := func(err error) (Entry, bool) {
		e.Err = &Error{Op: "list", Name: name, Path: path, Err: err}
		return e, true
	}
	magic := make([]byte, len(Magic))
	if size < int64(len(Magic)) || preadFull(fd, magic, 0) != nil || string(magic) != Magic {
		return e, false
	}
	h, err := readHeader(fd, size)
	if err != nil {
		return fail(err)
	}
	e.Header = h
	err = scanMutexes(fd, h, ScanBudget, func(i int, st robustlock.State) {
		if i == 0 {
			e.Lock = st
		}
		e.Counts.Add(st)
	})
	if err != nil {
		return fail(err)
	}
	return e, true
}

// statAt is Stat on an open directory.
func statAt(d int, name, path string) (Info, error) {
	fd, size, err := openFile(d, name, unix.O_RDONLY, nil)
	if err != nil {
		return Info{}, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Info{}, err
	}
	h, err := readHeader(fd, size)
	if err != nil {
		return Info{}, err
	}
	info := Info{
		Name:    name,
		Path:    path,
		Header:  h,
		UID:     int(st.Uid),
		Mode:    fs.FileMode(st.Mode & 0o777),
		Mutexes: make([]robustlock.State, h.MutexCount),
	}
	err = scanMutexes(fd, h, math.MaxInt64, func(i int, st robustlock.State) { info.Mutexes[i] = st })
	if err != nil {
		return Info{}, err
	}
	return info, nil
}

// scanReads counts the preads and lseeks scanMutexes makes, for tests that
// check its work is bounded.
var scanReads atomic.Int64

// scanMutexes reads the states of h's mutexes in order, calling fn for
// each, until all are read or budget bytes of the file have been: from
// mutex 0, in blocks of many mutexes copied into aligned memory of our own
// (a file being truncated under us then costs an error, never a SIGBUS).
// Where the file has a hole (SEEK_DATA), the mutexes wholly inside it are
// zero bytes, reported as the zero State without being read; the budget
// counts only bytes read.
func scanMutexes(fd int, h Header, budget int64, fn func(i int, st robustlock.State)) error {
	var buf [64 << 10 / 8]uint64
	b := unsafe.Slice((*byte)(unsafe.Pointer(&buf)), len(buf)*8)
	stride := int64(h.MutexStride)
	perBlock := int64(len(b)) / stride
	for i := 0; i < h.MutexCount; {
		off := h.MutexOff(i)
		scanReads.Add(1)
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		switch {
		case err == unix.ENXIO:
			data = h.MutexOff(h.MutexCount) // nothing but hole to the end
		case err != nil:
			data = off // no hole information: read everything
		}
		if gap := data - off; gap >= robustlock.Size {
			// Mutexes i to i+k-1 lie wholly in the hole.
			k := min((gap-robustlock.Size)/stride+1, int64(h.MutexCount-i))
			for range k {
				fn(i, robustlock.State{})
				i++
			}
			continue
		}
		n := min(perBlock, int64(h.MutexCount-i), budget/stride)
		if n <= 0 {
			return nil // budget spent
		}
		scanReads.Add(1)
		if err := preadFull(fd, b[:n*stride], off); err != nil {
			return err
		}
		budget -= n * stride
		for k := range n {
			m, err := robustlock.At(b, int(k*stride))
			if err != nil {
				return err
			}
			fn(i, m.State())
			i++
		}
	}
	return nil
}

// Remove unlinks the segment called name, if it is one: a regular file
// (never a symbolic link) that starts with the segment magic; a corrupt
// segment can thus be removed, but not an unrelated file. Permission is the
// kernel's: in a sticky directory such as /dev/shm, only the file's owner
// (or root) may remove it.
//
// Processes that have the segment mapped keep using it, mutexes and data
// alike, until they Close it; its memory is freed when the last mapping
// goes. The name, though, is free at once: a later Open with a Size
// creates a new, separate segment under it (and one without a Size fails
// with ErrNotExist), so processes that open the name after Remove do not
// meet those still using the old segment.
func Remove(name string, opts ...Option) error {
	c := newConfig(opts)
	path := filepath.Join(c.dir, name)
	fail := func(err error) error {
		return &Error{Op: "remove", Name: name, Path: path, Err: err}
	}
	if !validName(name) {
		return fail(detail(ErrBadName, "%q", name))
	}
	if err := c.check(); err != nil {
		return fail(err)
	}
	d, err := openDir(c.dir)
	if err != nil {
		return fail(err)
	}
	defer unix.Close(d)
	if c.force {
		return removeForced(d, name, fail)
	}
	fd, size, err := openFile(d, name, unix.O_RDONLY, nil)
	if errors.Is(err, errMissing) {
		return fail(ErrNotExist)
	}
	if err != nil {
		return fail(err)
	}
	magic := make([]byte, min(size, int64(len(Magic))))
	err = preadFull(fd, magic, 0)
	unix.Close(fd)
	if err != nil {
		return fail(err)
	}
	if len(magic) < len(Magic) {
		return fail(detail(ErrBadMagic, "%d bytes, shorter than the magic", size))
	}
	if string(magic) != Magic {
		return fail(detail(ErrBadMagic, "%q", magic))
	}
	if err := unix.Unlinkat(d, name, 0); err != nil {
		if err == unix.ENOENT {
			return fail(ErrNotExist)
		}
		return fail(err)
	}
	return nil
}
