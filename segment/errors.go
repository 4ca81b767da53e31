package segment

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/futexlab/robustlock"
)

// Error is the error type every function of this package returns: what was
// being done, to which segment, and why. Err is, or wraps, one of the
// sentinel errors below (or an errno from the kernel), so callers test
// causes with errors.Is:
//
//	if errors.Is(err, segment.ErrForeignOwner) { ... }
type Error struct {
	Op   string // "open", "create", "close", "check", "remove", "stat", "list", "do", "lock" or "repair"
	Name string // the segment's name; empty for list
	Path string // the file's path, when known
	Err  error  // the cause
}

// Error formats e as "segment: OP PATH: CAUSE".
func (e *Error) Error() string {
	where := e.Path
	if where == "" {
		where = e.Name
	}
	if where == "" {
		return "segment: " + e.Op + ": " + e.Err.Error()
	}
	return "segment: " + e.Op + " " + where + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Causes, each distinct. Open, Stat and Remove return them wrapped in an
// *Error, often with details ("wrong magic" becomes "wrong magic: got ...").
var (
	// ErrBadName: the name is empty, longer than MaxNameLen, starts with a
	// dot, or has a byte other than ASCII letters, digits, '.', '_', '-'.
	ErrBadName = errors.New("invalid segment name")

	// ErrInvalidOption: an option's value is out of range (negative Size,
	// Mode with bits beyond 0777, CreateOnly with OpenOnly, ...).
	ErrInvalidOption = errors.New("invalid option")

	// ErrExist: CreateOnly, and a file already exists under the name.
	// errors.Is(err, fs.ErrExist) holds too.
	ErrExist = fmt.Errorf("segment already exists: %w", fs.ErrExist)

	// ErrNotExist: no file exists under the name and Open was not allowed
	// to create one (OpenOnly, or no Size option). errors.Is(err,
	// fs.ErrNotExist) holds too.
	ErrNotExist = fmt.Errorf("segment does not exist: %w", fs.ErrNotExist)

	// ErrSymlink: the name is a symbolic link. It is never followed.
	ErrSymlink = errors.New("name is a symbolic link")

	// ErrNotRegular: the name is a directory, FIFO, socket or device.
	ErrNotRegular = errors.New("not a regular file")

	// ErrForeignOwner: the file belongs to a user other than the effective
	// user and root, and no TrustOwner option names that user.
	ErrForeignOwner = errors.New("file is owned by an untrusted user")

	// ErrPermission: the file's mode does not grant this process read and
	// write access (reported before any ownership problem, since it is the
	// one the caller can fix with chmod or group membership).
	// errors.Is(err, fs.ErrPermission) holds too.
	ErrPermission = fmt.Errorf("file's mode does not grant this process read and write: %w", fs.ErrPermission)

	// ErrLinked: the file has more than one hard link (or none). Another
	// name for the same file lets whoever made it read and write the
	// segment under a name the caller never chose; see AllowHardLinks.
	ErrLinked = errors.New("file has other hard links")

	// ErrWideMode: the file's mode grants permission bits the caller's Mode
	// (default 0600) does not, so someone the caller did not mean to share
	// with can read or write it; see AllowWiderMode.
	ErrWideMode = errors.New("file's mode grants more than Mode")

	// ErrUnsafeDir: the directory, or one of its ancestors, is owned by a
	// user other than the effective user, root or a TrustOwner user, or is
	// writable by group or others without the sticky bit: whoever can write
	// it can rename a live segment away, and the next Open would create a
	// second one; see TrustDir.
	ErrUnsafeDir = errors.New("directory is not safe for segments")

	// ErrMemoryLimit: the segment does not fit in what this process's
	// memory cgroup still allows; building it would get the process
	// OOM-killed instead of returning an error. Nothing was allocated.
	ErrMemoryLimit = errors.New("segment is larger than the memory cgroup allows")

	// ErrFault: the segment's memory could not be read: its file was
	// truncated (or replaced by a shorter one) while mapped, so touching
	// its pages raises SIGBUS. Close reports it after releasing the
	// mapping anyway; Check reports it without crashing. Remove with Force
	// deletes such a file. It is robustlock.ErrFault, which a Mutex's
	// Guarded methods return for the same cause.
	ErrFault = robustlock.ErrFault

	// ErrTruncated: the file is shorter than its header, or than the size
	// its header declares (an empty file included).
	ErrTruncated = errors.New("file is truncated")

	// ErrBadMagic: the file does not start with the segment magic; it is
	// not a segment. A file shorter than the magic, an empty one included,
	// gets it too: segments are published whole, so it is no segment cut
	// short.
	ErrBadMagic = errors.New("wrong magic: not a segment")

	// ErrVersion: the header's layout version is not one this package reads.
	ErrVersion = errors.New("unsupported header version")

	// ErrABI: the segment was made for another ABI: word size, byte order
	// or mutex size (robustlock.Size) differ from this process's.
	ErrABI = errors.New("segment made for another ABI")

	// ErrCorrupt: the header is inconsistent: a region lies outside the
	// file or overlaps another, an offset is misaligned, a count is out of
	// range, a reserved field is not zero, or the file is longer than the
	// header says.
	ErrCorrupt = errors.New("corrupt segment header")

	// ErrSizeMismatch: the existing segment's data size differs from the
	// Size option, or its number of extra mutexes from the Mutexes option.
	// Segments are never resized.
	ErrSizeMismatch = errors.New("existing segment has a different size")

	// ErrPIDNamespace: the segment was created in another PID namespace.
	// Robust lock words hold thread ids, which mean different threads in
	// different namespaces; see AllowOtherPIDNamespace.
	ErrPIDNamespace = errors.New("segment was created in another PID namespace")

	// ErrInit: the Init callback returned an error or panicked; nothing
	// was published. The callback's error (or the panic value, if it is an
	// error) is wrapped too.
	ErrInit = errors.New("Init callback failed")

	// ErrRepair: the Repair callback returned an error while Segment.Do
	// recovered from a dead holder; the lock was left not recoverable. The
	// callback's error is wrapped too.
	ErrRepair = errors.New("Repair callback failed")

	// ErrNoRepair: Segment.Do on a segment opened without the Repair
	// option. Nothing was locked.
	ErrNoRepair = errors.New("segment opened without a Repair option")

	// ErrInUse: Close was refused because a thread of this process holds
	// one of the segment's mutexes or is in the middle of locking or
	// unlocking one. Nothing was unmapped.
	ErrInUse = errors.New("a mutex of the segment is held or busy in this process")

	// ErrClosed: the Segment has been closed.
	ErrClosed = errors.New("segment is closed")

	// ErrUnsupported: segments are not supported on this platform (only
	// Linux is). errors.Is(err, errors.ErrUnsupported) holds too.
	ErrUnsupported = fmt.Errorf("segments need Linux: %w", errors.ErrUnsupported)
)

// detail wraps a sentinel with specifics, keeping errors.Is working.
func detail(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}
