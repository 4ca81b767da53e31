//go:build linux

package segment

// Opening is validation. Nothing here writes to, truncates or changes the
// mode of any file: a failed open leaves the directory exactly as it was.

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// openExisting is step 1 of the protocol: open the file under name, check
// everything, map it. errMissing if there is no such name.
func openExisting(d int, name, path string, c *config) (*Segment, error) {
	fd, size, err := openFile(d, name, unix.O_RDWR, c)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	h, err := readHeader(fd, size)
	if err != nil {
		return nil, err
	}
	if c.sizeSet && h.DataSize != int64(c.size) {
		return nil, detail(ErrSizeMismatch, "it holds %d data bytes, Size asks for %d", h.DataSize, c.size)
	}
	if c.mutexesSet && h.MutexCount != c.mutexes+1 {
		return nil, detail(ErrSizeMismatch, "it has %d extra mutexes, Mutexes asks for %d", h.MutexCount-1, c.mutexes)
	}
	if ns := pidNamespace(); !c.otherPIDNS && ns != 0 && h.PIDNamespace != 0 && ns != h.PIDNamespace {
		return nil, detail(ErrPIDNamespace, "created in pid:[%d], this process is in pid:[%d]", h.PIDNamespace, ns)
	}
	mem, err := unix.Mmap(fd, 0, int(h.TotalSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping %d bytes: %w", h.TotalSize, err)
	}
	s, err := newSegment(name, path, false, h, mem)
	if err != nil {
		_ = unix.Munmap(mem)
		return nil, err
	}
	return s, nil
}

// openFile opens name in d with access (O_RDWR or O_RDONLY) once it is
// known to be a regular file (never following a symbolic link) owned by a
// trusted user; with c == nil any owner will do. It looks before it
// opens, so a FIFO or device is never opened at all, and checks again
// after, on the descriptor, in case the name was replaced in between
// (O_NONBLOCK then keeps a FIFO from blocking, and O_NOCTTY a terminal
// from becoming ours). It returns the descriptor and the file's size, or
// errMissing if the name does not exist.
func openFile(d int, name string, access int, c *config) (int, int64, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return -1, 0, errMissing
		}
		return -1, 0, err
	}
	if err := checkFile(&st, c); err != nil {
		return -1, 0, err
	}
	fd, err := unix.Openat(d, name, access|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	switch err {
	case nil:
	case unix.ENOENT:
		return -1, 0, errMissing
	case unix.ELOOP:
		return -1, 0, ErrSymlink
	case unix.EISDIR, unix.ENXIO:
		return -1, 0, ErrNotRegular
	default:
		return -1, 0, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	if err := checkFile(&st, c); err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	return fd, st.Size, nil
}

// checkFile checks a file's type and, with c != nil, its owner.
func checkFile(st *unix.Stat_t, c *config) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFLNK:
		return ErrSymlink
	case unix.S_IFDIR:
		return detail(ErrNotRegular, "a directory")
	case unix.S_IFIFO:
		return detail(ErrNotRegular, "a FIFO")
	case unix.S_IFSOCK:
		return detail(ErrNotRegular, "a socket")
	default:
		return detail(ErrNotRegular, "a device")
	}
	if c == nil {
		return nil
	}
	uid := int(st.Uid)
	if uid != unix.Geteuid() && uid != 0 && !slices.Contains(c.trusted, uid) {
		return detail(ErrForeignOwner, "owned by uid %d", uid)
	}
	return nil
}

// readHeader reads and validates the header of the open file fd of size
// bytes.
func readHeader(fd int, size int64) (Header, error) {
	b := make([]byte, min(size, HeaderSize))
	if err := preadFull(fd, b, 0); err != nil {
		return Header{}, err
	}
	return parseHeader(b, size)
}

// preadFull fills b from offset off, or fails with ErrTruncated if the
// file ends first.
func preadFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pread(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading at %d: %w", off, err)
		}
		if n == 0 {
			return detail(ErrTruncated, "file ends at %d", off)
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}
