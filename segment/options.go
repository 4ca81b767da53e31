package segment

import (
	"io/fs"
	"path/filepath"
)

// DefaultDir is where segments live unless Dir says otherwise: the
// directory shm_open(3) uses, so "/dev/shm/NAME" is shm_open("/NAME").
const DefaultDir = "/dev/shm"

// DefaultMode is the permission a new segment is created with unless Mode
// says otherwise (before the umask is applied).
const DefaultMode fs.FileMode = 0o600

// Limits on what Open creates or accepts.
const (
	MaxNameLen = 200                           // bytes in a name
	MaxSize    = 1 << (30 + 10*(^uint(0)>>63)) // bytes of user data: 1 TiB (1 GiB on 32-bit targets)
	MaxMutexes = 1 << 16                       // extra mutexes (Mutexes option)
)

// An Option adjusts Open, Stat, List or Remove. Stat, List and Remove use
// only Dir (and Remove Force) and ignore the others.
type Option func(*config)

type config struct {
	dir          string
	size         int
	sizeSet      bool
	mutexes      int
	mutexesSet   bool
	mode         fs.FileMode
	init         func(data []byte) error
	createOnly   bool
	openOnly     bool
	trusted      []int
	otherPIDNS   bool
	trustGroups  bool
	trustDir     bool
	allowLinks   bool
	allowWide    bool
	force        bool
	fallbackOnly bool // tests: publish with the named-temporary protocol
	//lint:ignore U1000 read by the Linux creation path only
	noClaim bool // tests: race without the creation claim
	bad     []string
	repair  func(data []byte) error
}

// Size sets the number of bytes of user data (Data) the segment holds.
// It is needed to create a segment: without it Open only opens an existing
// one. When the segment exists, a Size that differs from its data size is
// ErrSizeMismatch; segments are never resized. Size(0) makes a segment that
// holds only mutexes.
func Size(n int) Option {
	return func(c *config) {
		if n < 0 || n > MaxSize {
			c.bad = append(c.bad, "Size out of range")
		}
		c.size, c.sizeSet = n, true
	}
}

// Init sets the function that fills a new segment's data before anyone
// else can see it. It runs only when Open builds a new segment, on zeroed
// data, after the segment's mutexes are initialised and before
// publication; an Open that finds the segment existing does not call it.
// If it returns an error or panics, nothing is published and Open returns
// the error (wrapped with ErrInit). When several processes race to create
// the same name, one builds while the others wait for its publication (a
// flock on a claim file beside the segment), so Init runs once; only where
// the claim cannot be had (a claim file planted by an untrusted user, a
// filesystem without flock) may racers each run Init on their own copy,
// and then only the copy that is published survives.
//
// Init must not keep data past its return other than through the Segment
// Open returns: the memory of a copy that lost the race is unmapped. It
// must not Open the same name: that Open would wait for the claim its own
// caller holds, forever. Other creators of the name (goroutines and
// processes) wait while Init runs, so an Init that never returns stalls
// them too.
func Init(fn func(data []byte) error) Option {
	return func(c *config) { c.init = fn }
}

// Dir sets the directory that holds the segment (default DefaultDir). Use
// the same directory in every process that shares a segment. The
// directory may be shared with other users: every file in it is validated
// before use, and symbolic links at a segment's name are never followed.
func Dir(path string) Option {
	return func(c *config) {
		if path == "" {
			c.bad = append(c.bad, "empty Dir")
		}
		c.dir = filepath.Clean(path)
	}
}

// Mode sets the permission bits of a new segment (default DefaultMode,
// 0600). As with open(2) and shm_open(3), the process's umask is applied:
// the file gets perm &^ umask. Only the bits 0777 are allowed. Every user
// that should use the segment needs read and write permission. Mode does
// not change an existing segment.
func Mode(perm fs.FileMode) Option {
	return func(c *config) {
		if perm&^0o777 != 0 {
			c.bad = append(c.bad, "Mode has bits beyond 0777")
		}
		c.mode = perm
	}
}

// Mutexes sets how many robust mutexes the header holds besides the
// segment's own lock (default 0). They are numbered 1 to n (see
// Segment.MutexN). When the segment exists, a different n is
// ErrSizeMismatch.
func Mutexes(n int) Option {
	return func(c *config) {
		if n < 0 || n > MaxMutexes {
			c.bad = append(c.bad, "Mutexes out of range")
		}
		c.mutexes, c.mutexesSet = n, true
	}
}

// CreateOnly makes Open fail with ErrExist unless this call creates the
// segment.
func CreateOnly() Option { return func(c *config) { c.createOnly = true } }

// OpenOnly makes Open fail with ErrNotExist instead of creating the segment.
func OpenOnly() Option { return func(c *config) { c.openOnly = true } }

// TrustOwner lets Open use a segment owned by uid, as well as those of the
// effective user and root (the only owners trusted by default). Whoever
// owns the file can rewrite its header and lock words at any time, so only
// trust users who are meant to be peers. It may be given several times.
func TrustOwner(uid int) Option {
	return func(c *config) {
		if uid < 0 {
			c.bad = append(c.bad, "TrustOwner with a negative uid")
		}
		c.trusted = append(c.trusted, uid)
	}
}

// AllowOtherPIDNamespace lets Open use a segment created in another PID
// namespace, which it otherwise refuses with ErrPIDNamespace. Robust lock
// words hold thread ids, and the kernel does not translate them between
// namespaces: two processes whose thread ids collide can take each other
// for the owner, and the death of one can mark the other's lock
// OWNER_DIED. Use it only when every process that will ever use the
// segment's mutexes is in one namespace, or when the mutexes are not used.
func AllowOtherPIDNamespace() Option { return func(c *config) { c.otherPIDNS = true } }

// TrustGroups lets Open use a segment owned by any user when the file's
// group is one of this process's groups (its effective group or a
// supplementary one) and the file's mode grants that group read and write:
// the way a group of services shares segments without naming every
// possible creator with TrustOwner. Every member of the group can then
// rewrite the segment, so only use it with groups whose members are meant
// to be peers. A directory that is group-writable without the sticky bit
// is accepted too when its group is one of this process's.
func TrustGroups() Option { return func(c *config) { c.trustGroups = true } }

// TrustDir lets Open use a directory it would otherwise refuse with
// ErrUnsafeDir: one (or an ancestor of one) owned by an untrusted user, or
// writable by group or others without the sticky bit. Whoever can write
// such a directory can rename a live segment away, after which the next
// Open creates a second segment under the name and two processes can hold
// "the" lock at once.
func TrustDir() Option { return func(c *config) { c.trustDir = true } }

// AllowHardLinks lets Open use a file with more than one hard link, which
// it otherwise refuses with ErrLinked: another name for the same file,
// possibly in a directory with other permissions, gives its maker access
// to the segment under a name of their choosing.
func AllowHardLinks() Option { return func(c *config) { c.allowLinks = true } }

// AllowWiderMode lets Open use a file whose mode grants permission bits
// beyond Mode (default 0600), which it otherwise refuses with
// ErrWideMode: the caller would be putting its data where users it did
// not choose can read or write it. Peers sharing a segment should pass the
// same Mode instead.
func AllowWiderMode() Option { return func(c *config) { c.allowWide = true } }

// Force makes Remove unlink whatever regular file is under the name, even
// one that is truncated, damaged or not a segment at all (a symbolic link,
// directory or device is still refused). It is the way to clear a
// segment that Open refuses, such as one truncated while in use (ErrFault,
// ErrTruncated). Open, Stat and List ignore it.
func Force() Option { return func(c *config) { c.force = true } }

func newConfig(opts []Option) config {
	c := config{dir: DefaultDir, mode: DefaultMode}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.createOnly && c.openOnly {
		c.bad = append(c.bad, "CreateOnly with OpenOnly")
	}
	return c
}

// check returns the first invalid option, if any.
func (c *config) check() error {
	if len(c.bad) > 0 {
		return detail(ErrInvalidOption, "%s", c.bad[0])
	}
	return nil
}

// validName reports whether name may name a segment: 1 to MaxNameLen
// bytes of ASCII letters, digits, '.', '_' and '-', not starting with a dot
// (so ".", ".." and this package's temporaries are never names).
func validName(name string) bool {
	if len(name) == 0 || len(name) > MaxNameLen || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch b := name[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '.', b == '_', b == '-':
		default:
			return false
		}
	}
	return true
}

// Repair sets how Segment.Do recovers the segment's data when a holder of
// its lock died mid-update: Do, finding the lock's previous owner dead,
// calls fn on Data with the lock held, and marks the lock consistent only
// if fn returns nil. If fn returns an error (Do returns it wrapped in
// ErrRepair) or panics, Do unlocks without marking it, so the lock becomes
// not recoverable for every process (robustlock.ErrNotRecoverable) rather
// than hand on data nobody could repair. Give the same Repair to every
// Open of a segment, as with Init: Init builds the data, Repair rebuilds
// it, and each process recovers the same way. fn must not keep data past
// its return, nor lock or unlock the segment's lock.
//
// Repair is used only by Segment.Do. Mutex().Lock knows nothing of it: a
// caller that locks the Mutex directly gets robustlock.ErrOwnerDied and
// repairs by itself, as before. Without Repair, Segment.Do refuses to run
// (ErrNoRepair); a segment whose data needs no repair says so with
// Repair(func([]byte) error { return nil }).
func Repair(fn func(data []byte) error) Option {
	return func(c *config) {
		if fn == nil {
			c.bad = append(c.bad, "nil Repair")
		}
		c.repair = fn
	}
}
