// Package segment owns named shared-memory segments: files in /dev/shm (or
// another directory) that unrelated processes map by name, each holding a
// fixed header, robust mutexes (package robustlock) and the caller's data.
// It owns their publication protocol (the first process to open a name
// creates and initialises the segment, and nobody can ever see it
// half-built), their header layout, and the validation of every file it
// opens.
//
//	seg, err := segment.Open("jobs", segment.Size(4096),
//		segment.Init(func(data []byte) error { copy(data, "ready"); return nil }),
//		segment.Repair(repair)) // run by Do when a holder died mid-update
//	if err != nil { ... }
//	defer seg.Close()
//	err = seg.Do(ctx, func(data []byte) error { return update(data) })
//
// Do locks the segment's own lock (Mutex), runs Repair first if its
// previous holder died, marks it consistent only if Repair succeeded, and
// unlocks on every path; examples/quickstart in the module is a complete
// program. Mutex().Lock can be used directly instead: ErrOwnerDied then
// means the lock is held and the caller repairs (see the examples).
//
// # Creation and publication
//
// Open creates a segment only if none exists under the name and the Size
// option is given. The creator builds the whole segment, header, mutexes
// (each initialised robust and process-shared) and the Init callback's
// data, in a file that has no name yet, then publishes it with a single
// link(2). Processes racing to create a name take turns on a claim (a
// flock on a hidden file beside the segment, dropped by the kernel if its
// holder dies): one builds, the others sleep until it has published and
// then open its segment, so Init runs once and a large segment is not
// built several times over. Where the claim cannot be had they each build,
// exactly one link succeeds, and the others discard their copies and open
// the winner's. Created tells each which happened. A creator that fails,
// panics in Init or is killed publishes nothing; one whose build fails
// (ENOSPC, say) first looks whether a racer published the name. Before
// allocating, a creator compares the size with what its memory cgroup
// still allows (ErrMemoryLimit), since tmpfs pages beyond the limit get it
// OOM-killed rather than refused. The protocol is described step by step
// at the top of open_linux.go.
//
// # Validation
//
// The directory may be shared with other users (/dev/shm is writable by
// all), so Open trusts nothing it finds. The directory itself and each of
// its ancestors must belong to the effective user, root or a TrustOwner
// user and must not be writable by group or others unless sticky (as ssh's
// StrictModes asks; /dev/shm, root's and 1777, passes), or else whoever can
// write it could rename a live segment away and make the next Open create
// a second one (ErrUnsafeDir; TrustDir lifts it). The name must be a
// regular file, never a symbolic link (they are not followed), FIFO,
// socket, device or directory; it is inspected before it is opened and
// again after. Its mode must let this process read and write it
// (ErrPermission, reported before any ownership problem). It must belong
// to the effective user or root, or to a user named by TrustOwner, or,
// with TrustGroups, have one of this process's groups with read and write
// for that group. It must have exactly one hard link (ErrLinked, unless
// AllowHardLinks: another name for the file would hand it to whoever made
// that name), and its mode must grant nothing beyond Mode (ErrWideMode,
// unless AllowWiderMode: peers pass the same Mode).
// Its header must have the magic, a version this package reads, this
// process's ABI (word size, byte order, robustlock.Size), and sizes and
// offsets that lie inside the file, do not overlap, and add up to the file's
// size exactly. A Size or Mutexes option must match the existing segment;
// nothing is ever resized. A segment created in another PID namespace is
// refused (ErrPIDNamespace) unless AllowOtherPIDNamespace. Each failure
// wraps its own Err* cause inside an *Error, and a failed Open never
// writes, truncates or chmods a file it did not create.
//
// Names are 1 to MaxNameLen bytes of ASCII letters, digits, '.', '_' and
// '-', and do not start with a dot. A segment NAME in the default
// directory is what shm_open("/NAME") opens from C.
//
// Permissions: a new segment's mode is Mode (default 0600) with the
// process's umask cleared from it, as open(2) and shm_open(3) do. Every
// process that uses a segment needs read and write access to it.
//
// # Lifetime
//
// A Segment stays mapped until Close, which is refused (ErrInUse) while a
// thread of this process holds one of its mutexes or is inside a lock or
// unlock of one: unmapping then would leave the kernel a robust-list entry
// into memory that is gone. There is no finalizer: a Segment that is never
// closed stays mapped until the process exits. After Close, Data returns
// nil and MutexN returns ErrClosed; memory obtained earlier must not be
// used.
//
// Remove unlinks the name. Mappings keep working; the next Open of the name
// with a Size creates a new, unrelated segment. Stat and List read headers
// and mutex states without locking anything.
//
// # Damaged segments
//
// Anyone with write access to a segment's file can truncate it (truncate
// -s 0, or cp of a shorter file over it) while processes have it mapped.
// Touching a page beyond the new end of the file then raises SIGBUS, which
// kills a Go program ("fatal error: fault"). This package never touches the
// mapping off the lock's fast path without a guard: Check reports the
// damage (ErrFault), Close releases the mapping anyway and returns
// ErrFault, and Remove with Force deletes the damaged file (plain Remove
// refuses a file without the magic). The uncontended Lock and Unlock
// cannot afford a guard on every call and, like every access to Data, die
// on a truncated segment. A program that must survive that guards its own
// accesses to Data with the runtime's panic-on-fault mode, which turns the
// fault into a panic it can recover, on the current goroutine only:
//
//	func read(seg *segment.Segment, off int) (b byte, err error) {
//		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
//		defer func() {
//			if r := recover(); r != nil {
//				err = fmt.Errorf("segment damaged: %v", r) // a runtime.Error with an Addr method
//			}
//		}()
//		return seg.Data()[off], nil
//	}
//
// The guard costs a few nanoseconds a call (a deferred function), so guard
// whole batches of accesses rather than each byte.
//
// # PID namespaces
//
// Robust lock words hold kernel thread ids, which the kernel does not
// translate between PID namespaces, so every process sharing a segment's
// mutexes must be in one namespace. The header records the creator's
// namespace as the inode number of /proc/self/ns/pid; where /proc is not
// mounted, the same inode comes from a pidfd of the process
// (PIDFD_GET_PID_NAMESPACE, Linux 6.11 and later). Where neither works the
// creator stores 0, and an opener that cannot tell its own namespace does
// not check: 0 means unknown, and the check is skipped.
//
// # Header, version 1
//
// The file is the header (HeaderSize = 128 bytes at offset 0), then
// MutexCount mutexes of glibc's pthread_mutex_t layout at MutexOffset +
// i*MutexStride (64-byte aligned, one per cache line; mutex 0 is the
// segment's own lock, Mutex), then DataSize bytes of user data at
// DataOffset (64-byte aligned), which ends the file. Integers are in the
// machine's byte order; the creator writes the magic last.
//
//	offset size type      field         meaning
//	     0    8 char[8]   magic         "RLOCKSEG" (no terminating NUL)
//	     8    4 uint32    version       1
//	    12    2 uint16    word_size     sizeof(void *): 8
//	    14    2 uint16    mutex_size    sizeof(pthread_mutex_t): 40 on x86-64, 48 on arm64
//	    16    4 uint32    byte_order    0x01020304, written natively
//	    20    4 uint32    header_size   128
//	    24    4 uint32    mutex_count   mutexes, the segment lock included (1 + Mutexes option)
//	    28    4 uint32    mutex_stride  bytes between mutexes: 64; >= mutex_size, multiple of 8
//	    32    8 uint64    mutex_offset  offset of mutex 0: 128; multiple of 8
//	    40    8 uint64    data_offset   offset of the data; multiple of 8, after the last mutex
//	    48    8 uint64    data_size     bytes of data (Size option)
//	    56    8 uint64    total_size    data_offset + data_size == size of the file
//	    64    4 int32     creator_pid   the creator's pid, as its own PID namespace numbers it; > 0
//	    68    4 uint32    flags         0
//	    72    8 int64     created_ns    creation time, nanoseconds since 1970 (CLOCK_REALTIME)
//	    80    8 uint64    pidns_ino     inode of the creator's /proc/self/ns/pid; 0 if unknown
//	    88   40 uint8[40] reserved      0
//
// The same, as C, is the header robustlock_segment.h in this package's
// directory, the one definition C and C++ peers include (the package's
// tests compile their C peers against it). It declares struct
// robustlock_segment with static assertions of every offset above, and
// inline helpers: robustlock_segment_check (the checks Open makes),
// robustlock_segment_mutex and robustlock_segment_data.
//
// A C peer opens a published segment with shm_open("/NAME", O_RDWR, 0),
// fstats it, maps st_size bytes MAP_SHARED, checks it with
// robustlock_segment_check, then uses robustlock_segment_mutex(h, i) with
// pthread_mutex_lock, handling EOWNERDEAD with pthread_mutex_consistent,
// and the data at robustlock_segment_data(h). The mutexes are robust,
// process-shared and of the normal type, as pthread_mutex_init with those
// attributes makes them. A C creator must follow the same protocol: build
// the complete file under a name no one opens, then link(2) it into place.
//
// Only glibc's layout is shared (musl's mutex differs), and only on Linux;
// elsewhere Open, Stat, List and Remove return ErrUnsupported.
package segment
