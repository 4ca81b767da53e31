//go:build linux

package segment

// Opening is validation. Nothing here writes to, truncates or changes the
// mode of any file: a failed open leaves the directory exactly as it was.

import (
	"fmt"
	"io/fs"
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
	if err := checkFile(&st, c, d, name); err != nil {
		return -1, 0, err
	}
	fd, err := retry(func() (int, error) {
		return unix.Openat(d, name, access|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	})
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
	if err := checkFile(&st, c, -1, ""); err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	return fd, st.Size, nil
}

// checkFile checks a file's type and, with c != nil, what Open requires
// of it, in this order: that its mode lets this process read and write it
// (a problem the caller can fix, so it is reported before the others), that
// its owner is trusted (the effective user, root, a TrustOwner user, or
// with TrustGroups a group of ours that the mode grants read and write),
// that it has exactly one hard link, and that its mode grants nothing
// beyond the caller's Mode. d and name locate the file for the access
// check; d < 0 means the file is already open for reading and writing,
// which proves the access.
func checkFile(st *unix.Stat_t, c *config, d int, name string) error {
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
	perm := fs.FileMode(st.Mode & 0o777)
	uid, gid := int(st.Uid), int(st.Gid)
	if !mayReadWrite(st, d, name) {
		return detail(ErrPermission, "mode %04o, owner uid %d, group gid %d", perm, uid, gid)
	}
	if !trustedOwner(uid, c) && !(c.trustGroups && perm&0o060 == 0o060 && inGroups(gid)) {
		return detail(ErrForeignOwner, "owned by uid %d", uid)
	}
	if st.Nlink != 1 && !c.allowLinks {
		return detail(ErrLinked, "%d links", st.Nlink)
	}
	if wide := perm &^ c.mode.Perm(); wide != 0 && !c.allowWide {
		return detail(ErrWideMode, "mode %04o, Mode %04o", perm, c.mode.Perm())
	}
	return nil
}

func trustedOwner(uid int, c *config) bool {
	return uid == unix.Geteuid() || uid == 0 || slices.Contains(c.trusted, uid)
}

// mayReadWrite reports whether this process may open the file st
// describes for reading and writing. The mode bits decide, as the kernel
// does (the owner's bits for the owner, the group's for a member, the
// others' for the rest); root, and a process whose capabilities override
// the bits (asked of the kernel with faccessat), may anyway. d < 0: the
// file is open already, so the answer is yes.
func mayReadWrite(st *unix.Stat_t, d int, name string) bool {
	euid := unix.Geteuid()
	if euid == 0 || d < 0 {
		return true
	}
	var bits uint32
	switch {
	case int(st.Uid) == euid:
		bits = st.Mode >> 6
	case inGroups(int(st.Gid)):
		bits = st.Mode >> 3
	default:
		bits = st.Mode
	}
	if bits&6 == 6 {
		return true
	}
	return d >= 0 && unix.Faccessat(d, name, unix.R_OK|unix.W_OK, unix.AT_EACCESS|unix.AT_SYMLINK_NOFOLLOW) == nil
}

// inGroups reports whether gid is this process's effective group or one
// of its supplementary groups.
func inGroups(gid int) bool {
	if gid == unix.Getegid() {
		return true
	}
	groups, err := unix.Getgroups()
	return err == nil && slices.Contains(groups, gid)
}

// maxDirDepth bounds the walk of checkDir (PATH_MAX allows at most 2048
// components; real directories have a handful).
const maxDirDepth = 256

// checkDir checks, like ssh's StrictModes, the directory d and each of its
// ancestors up to the root: each must be owned by the effective user, root
// or a TrustOwner user, and must not be writable by its group or others
// unless it has the sticky bit (with TrustGroups: or only its group may
// write it and that group is one of ours). Whoever may rename entries in
// any of them could move a live segment (or the directory holding it)
// away. The walk follows ".." from the open directory, so it checks the
// directory actually opened, whatever path led there.
func checkDir(d int, c *config) error {
	cur, err := unix.Openat(d, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	for depth := 0; ; depth++ {
		var st unix.Stat_t
		err := unix.Fstat(cur, &st)
		if err != nil {
			unix.Close(cur)
			return fmt.Errorf("directory: %w", err)
		}
		if err := dirSafe(&st, c); err != nil {
			unix.Close(cur)
			if depth > 0 {
				return fmt.Errorf("%w (an ancestor, %d levels up)", err, depth)
			}
			return err
		}
		parent, err := unix.Openat(cur, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		if err != nil || depth == maxDirDepth {
			if err == nil {
				unix.Close(parent)
			}
			return nil // cannot go higher (a parent we may not search): what we saw was safe
		}
		var pst unix.Stat_t
		if unix.Fstat(parent, &pst) != nil || (pst.Dev == st.Dev && pst.Ino == st.Ino) {
			unix.Close(parent)
			return nil // the root (or a chroot's)
		}
		cur = parent
	}
}

// dirSafe is checkDir's test of one directory.
func dirSafe(st *unix.Stat_t, c *config) error {
	uid := int(st.Uid)
	if !trustedOwner(uid, c) {
		return detail(ErrUnsafeDir, "owned by uid %d", uid)
	}
	mode := st.Mode
	if mode&0o022 == 0 || mode&unix.S_ISVTX != 0 {
		return nil
	}
	if c.trustGroups && mode&0o002 == 0 && inGroups(int(st.Gid)) {
		return nil
	}
	return detail(ErrUnsafeDir, "mode %04o: writable by others without the sticky bit", mode&0o7777)
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
