//go:build linux

package segment

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
// (this package's temporaries among them).
func List(opts ...Option) ([]Info, error) {
	c := newConfig(opts)
	fail := func(err error) ([]Info, error) {
		return nil, &Error{Op: "list", Path: c.dir, Err: err}
	}
	if err := c.check(); err != nil {
		return fail(err)
	}
	d, err := openDir(c.dir)
	if err != nil {
		return fail(err)
	}
	defer unix.Close(d)
	fd, err := unix.Openat(d, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	f := os.NewFile(uintptr(fd), c.dir)
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fail(err)
	}
	slices.Sort(names)
	infos := []Info{}
	for _, n := range names {
		if !validName(n) {
			continue
		}
		if info, err := statAt(d, n, filepath.Join(c.dir, n)); err == nil {
			infos = append(infos, info)
		}
	}
	return infos, nil
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
	// Copy each mutex into aligned memory of our own and read it there: a
	// file being truncated under us can then cost an error, never a
	// SIGBUS.
	var buf [(robustlock.Size + 7) / 8]uint64
	b := unsafe.Slice((*byte)(unsafe.Pointer(&buf)), robustlock.Size)
	for i := range info.Mutexes {
		if err := preadFull(fd, b, h.MutexOff(i)); err != nil {
			return Info{}, err
		}
		m, err := robustlock.At(b, 0)
		if err != nil {
			return Info{}, err
		}
		info.Mutexes[i] = m.State()
	}
	return info, nil
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
