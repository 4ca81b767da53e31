//go:build linux

package segment

// Tests of hostile and broken environments (issue 11) and of interrupted
// allocation (issue 14): truncated segments, racing creators on a small
// tmpfs, hard links, unsafe directories, planted temporaries, memory
// cgroups, group trust, signal storms.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock/internal/proctest"
)

// TestDamagedSegment: another process truncates (truncate -s 0) or
// overwrites with a shorter file (cp) a segment a helper has mapped. The
// helper's Check reports ErrFault, its Close releases the mapping and
// reports ErrFault instead of dying of SIGBUS, and only Remove with Force
// removes the damaged file.
func TestDamagedSegment(t *testing.T) {
	for _, damage := range []string{"truncate", "cp"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, "d", Dir(dir), Size(1<<20), Mutexes(2), Init(fill("d")))
			s.Close()
			path := filepath.Join(dir, "d")
			k := spawn(t, "damaged", "SEG_DIR="+dir, "SEG_NAME=d")
			k.Expect("open")
			var cmd *exec.Cmd
			switch damage {
			case "truncate":
				cmd = exec.Command("truncate", "-s", "0", path)
			case "cp":
				small := filepath.Join(t.TempDir(), "small")
				if err := os.WriteFile(small, []byte("not a segment any more"), 0o600); err != nil {
					t.Fatal(err)
				}
				cmd = exec.Command("cp", small, path) // cp truncates and rewrites the same inode
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Skipf("%v: %v %s", cmd, err, out)
			}
			if got := k.Do("check"); got != "check fault" {
				t.Errorf("Check on the damaged segment: %q, want fault\n%s", got, k.Stderr())
			}
			// Truncated, the mutexes cannot be read: ErrFault. Overwritten
			// by a 22-byte file, the first page (where the mutexes are)
			// still reads, so Close can check them and unmaps normally.
			want := map[string]string{"truncate": "close fault", "cp": "close nil"}[damage]
			if got := k.Do("close"); got != want {
				t.Fatalf("Close on the damaged segment: %q, want %q\n%s", got, want, k.Stderr())
			}
			if got := k.Next(); got != "maps clean" {
				t.Errorf("after Close: %q", got)
			}
			if got := k.Do("close"); got != "close closed" {
				t.Errorf("second Close: %q", got)
			}
			k.CloseStdin()
			if err := k.Wait(); err != nil {
				t.Errorf("helper: %v\n%s", err, k.Stderr())
			}
			if err := Remove("d", Dir(dir)); err == nil {
				t.Fatal("Remove without Force removed a damaged segment")
			}
			if err := Remove("d", Dir(dir), Force()); err != nil {
				t.Fatalf("Remove with Force: %v", err)
			}
			if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("still there after Remove with Force: %v", err)
			}
		})
	}
}

// TestForceRemoveRefuses: Force removes any regular file, but never follows
// a symbolic link or removes a directory.
func TestForceRemoveRefuses(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "target")
	os.WriteFile(target, nil, 0o600)
	os.Symlink(target, filepath.Join(dir, "link"))
	os.Mkdir(filepath.Join(dir, "sub"), 0o700)
	if err := Remove("link", Dir(dir), Force()); !errors.Is(err, ErrSymlink) {
		t.Errorf("Force on a symlink: %v", err)
	}
	if err := Remove("sub", Dir(dir), Force()); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Force on a directory: %v", err)
	}
	if err := Remove("none", Dir(dir), Force()); !errors.Is(err, ErrNotExist) {
		t.Errorf("Force on nothing: %v", err)
	}
	if _, err := os.Stat(target); err != nil {
		t.Errorf("the link's target: %v", err)
	}
}

// TestClaimSmallTmpfs: processes race to create a segment far larger than
// a tmpfs can hold copies of. With the claim one builds (Init runs once)
// and every racer gets the segment; without it (see TestOpenRace's
// link-race) several build and the tmpfs fills.
func TestClaimSmallTmpfs(t *testing.T) {
	const procs, size = 6, 24 << 20
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64m,mode=0700"); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	kids := make([]*child, procs)
	for i := range kids {
		kids[i] = spawn(t, "race", "SEG_DIR="+dir, "SEG_SIZE="+strconv.Itoa(size))
	}
	for _, k := range kids {
		k.Send("big")
	}
	creators, builders := 0, 0
	for i, k := range kids {
		f := strings.Fields(k.NextBefore(deadlineIn()))
		if len(f) != 5 {
			t.Fatalf("process %d: %v", i, f)
		}
		if f[0] == "true" {
			creators++
		}
		if f[4] == "true" {
			builders++
		}
		if f[1] != "true" {
			t.Errorf("process %d saw data that is not the creator's", i)
		}
	}
	if creators != 1 || builders != 1 {
		t.Errorf("%d creators, %d ran Init; want 1 and 1", creators, builders)
	}
	for _, k := range kids {
		k.CloseStdin()
		k.Wait()
	}
	if tmp := temporaries(t, dir); len(tmp) != 0 {
		t.Errorf("left: %q", tmp)
	}
}

// TestHardLink: another user links a world-writable segment under a new
// name (ln, run as nobody). Open refuses both names with ErrLinked unless
// AllowHardLinks; a file whose mode grants more than Mode is ErrWideMode
// unless AllowWiderMode.
func TestHardLink(t *testing.T) {
	dir := sharedDir(t)
	old := unix.Umask(0)
	s, err := Open("jobs", Dir(dir), Size(64), Mode(0o666))
	unix.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	ln := exec.Command("ln", filepath.Join(dir, "jobs"), filepath.Join(dir, "payments"))
	if os.Geteuid() == 0 {
		// The attack as it happens: another user, in a sticky shared dir.
		if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
		ln.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	if out, err := ln.CombinedOutput(); err != nil {
		t.Skipf("ln: %v %s", err, out)
	}
	for _, name := range []string{"payments", "jobs"} {
		if _, err := Open(name, Dir(dir), Size(64), Mode(0o666)); !errors.Is(err, ErrLinked) {
			t.Errorf("Open(%s) with two links: %v, want ErrLinked", name, err)
		}
	}
	s, err = Open("payments", Dir(dir), Size(64), Mode(0o666), AllowHardLinks())
	if err != nil {
		t.Fatalf("AllowHardLinks: %v", err)
	}
	s.Close()
	os.Remove(filepath.Join(dir, "payments"))

	if _, err := Open("jobs", Dir(dir), Size(64)); !errors.Is(err, ErrWideMode) {
		t.Errorf("a 0666 file opened with the default Mode: %v, want ErrWideMode", err)
	}
	for _, opts := range [][]Option{{Mode(0o666)}, {AllowWiderMode()}} {
		s, err := Open("jobs", append(opts, Dir(dir), Size(64))...)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		s.Close()
	}
}

// TestUnsafeDir: directories others can rename entries in are refused
// (ErrUnsafeDir), as are those whose ancestors are; the sticky bit, the
// caller's or root's ownership, TrustOwner, TrustGroups and TrustDir make
// them acceptable. /dev/shm itself (root, 1777) is fine.
func TestUnsafeDir(t *testing.T) {
	open := func(dir string, opts ...Option) error {
		s, err := Open("u", append(opts, Dir(dir), Size(8))...)
		if err == nil {
			s.Close()
			Remove("u", Dir(dir))
		}
		return err
	}
	base := t.TempDir()
	mk := func(name string, mode fs.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	open777 := mk("open", 0o777)
	if err := open(open777); !errors.Is(err, ErrUnsafeDir) {
		t.Errorf("0777 directory: %v, want ErrUnsafeDir", err)
	}
	if err := open(open777, TrustDir()); err != nil {
		t.Errorf("0777 directory with TrustDir: %v", err)
	}
	if err := open(mk("sticky", 0o777|os.ModeSticky)); err != nil {
		t.Errorf("1777 directory: %v", err)
	}
	if err := open(mk("private", 0o700)); err != nil {
		t.Errorf("0700 directory: %v", err)
	}
	inner := filepath.Join(open777, "inner")
	os.Mkdir(inner, 0o700)
	if err := open(inner); !errors.Is(err, ErrUnsafeDir) || !strings.Contains(err.Error(), "ancestor") {
		t.Errorf("0700 directory inside a 0777 one: %v, want ErrUnsafeDir (ancestor)", err)
	}
	group := mk("group", 0o770)
	os.Chown(group, -1, os.Getegid())
	if err := open(group); !errors.Is(err, ErrUnsafeDir) {
		t.Errorf("0770 directory: %v, want ErrUnsafeDir", err)
	}
	if err := open(group, TrustGroups()); err != nil {
		t.Errorf("0770 directory of our group with TrustGroups: %v", err)
	}
	if os.Geteuid() == 0 {
		foreign := mk("foreign", 0o755)
		os.Chown(foreign, 4242, 4242)
		if err := open(foreign); !errors.Is(err, ErrUnsafeDir) {
			t.Errorf("directory of uid 4242: %v, want ErrUnsafeDir", err)
		}
		if err := open(foreign, TrustOwner(4242)); err != nil {
			t.Errorf("directory of uid 4242 with TrustOwner(4242): %v", err)
		}
	}
	if st, err := os.Stat(DefaultDir); err == nil && st.Mode()&os.ModeSticky != 0 {
		name := fmt.Sprintf("robustlock-test-%d", os.Getpid())
		s, err := Open(name, Size(8), CreateOnly())
		if err != nil {
			t.Errorf("%s: %v", DefaultDir, err)
		} else {
			s.Close()
			Remove(name)
		}
	}
}

// TestPlantedTemporaries: 100,000 empty files named like stale temporaries
// of dead creators of this namespace, owned by another user. A creation on
// the O_TMPFILE path does no sweeping at all, one on the named-temporary
// path a bounded amount, and probes none of the planted creators for
// liveness (they are not ours). Counts work, not time.
func TestPlantedTemporaries(t *testing.T) {
	const planted = 100000
	base := DefaultDir
	if _, err := os.Stat(base); err != nil {
		base = os.TempDir()
	}
	dir, err := os.MkdirTemp(base, "robustlock-plant-")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Skip("no /bin/true to make a dead pid with")
	}
	dead := cmd.Process.Pid
	foreign := os.Geteuid() == 0
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)
	for i := range planted {
		n := fmt.Sprintf("%s%d-%d-%d-%016x", tmpPrefix, pidNamespace(), dead, i, i)
		fd, err := unix.Openat(d, n, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if foreign {
			unix.Fchown(fd, 4242, 4242)
		}
		unix.Close(fd)
	}
	work := func() [3]int64 {
		return [3]int64{sweepWork.names.Load(), sweepWork.stats.Load(), sweepWork.probes.Load()}
	}
	for _, fallback := range []bool{false, true} {
		before := work()
		opts := []Option{Dir(dir), Size(8), CreateOnly()}
		if fallback {
			opts = append(opts, withFallback())
		}
		name := fmt.Sprintf("s%t", fallback)
		s, err := Open(name, opts...)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		after := work()
		names, stats, probes := after[0]-before[0], after[1]-before[1], after[2]-before[2]
		t.Logf("fallback=%t: read %d names, stat'ed %d, probed %d", fallback, names, stats, probes)
		switch {
		case !fallback && names+stats+probes != 0:
			t.Errorf("the O_TMPFILE path swept: %d names, %d stats, %d probes", names, stats, probes)
		case fallback && (names > sweepNames || stats > sweepStats || probes > sweepProbes):
			t.Errorf("sweep not bounded: %d names, %d stats, %d probes", names, stats, probes)
		case fallback && foreign && probes != 0:
			t.Errorf("probed %d creators of files that are not ours", probes)
		case fallback && names == 0:
			t.Error("the named-temporary path did not sweep at all")
		}
	}
}

// TestMemoryLimitFake: the cgroup check, on fake cgroup trees (v2 and v1):
// the tightest ancestor decides, reclaimable page cache is not counted as
// used, shmem is.
func TestMemoryLimitFake(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(s), 0o644)
	}
	const M = 1 << 20
	cg := filepath.Join(root, "proc-self-cgroup")
	defer func(a, b string) { procSelfCgroup, cgroupRoot = a, b }(procSelfCgroup, cgroupRoot)
	procSelfCgroup, cgroupRoot = cg, filepath.Join(root, "sys")

	// v2: /a is limited to 64 MiB, /a/b unlimited; 10 MiB used of which 6 MiB
	// is page cache (2 of it shmem).
	write(cg, "0::/a/b\n")
	write(filepath.Join(root, "sys/a/memory.max"), strconv.Itoa(64*M)+"\n")
	write(filepath.Join(root, "sys/a/memory.current"), strconv.Itoa(10*M)+"\n")
	write(filepath.Join(root, "sys/a/memory.stat"), fmt.Sprintf("anon %d\nfile %d\nshmem %d\n", 4*M, 6*M, 2*M))
	write(filepath.Join(root, "sys/a/b/memory.max"), "max\n")
	write(filepath.Join(root, "sys/a/b/memory.current"), "0\n")
	// room = 64 - (10 - (6-2)) = 58 MiB
	if err := checkMemoryLimit(58 * M); err != nil {
		t.Errorf("58 MiB in 58 MiB of room: %v", err)
	}
	if err := checkMemoryLimit(58*M + 1); !errors.Is(err, ErrMemoryLimit) {
		t.Errorf("58 MiB + 1 in 58 MiB of room: %v", err)
	}
	if err := checkMemoryLimit(256 * M); !errors.Is(err, ErrMemoryLimit) || !strings.Contains(err.Error(), filepath.Join(root, "sys/a")) {
		t.Errorf("256 MiB: %v", err)
	}

	// v1, as this machine has it: memory:/x, 32 MiB.
	write(cg, "4:memory:/x\n0::/\n")
	write(filepath.Join(root, "sys/memory/x/memory.limit_in_bytes"), strconv.Itoa(32*M))
	write(filepath.Join(root, "sys/memory/x/memory.usage_in_bytes"), "0")
	write(filepath.Join(root, "sys/memory/memory.limit_in_bytes"), "9223372036854771712")
	if err := checkMemoryLimit(33 * M); !errors.Is(err, ErrMemoryLimit) {
		t.Errorf("v1, 33 MiB in 32: %v", err)
	}
	if err := checkMemoryLimit(31 * M); err != nil {
		t.Errorf("v1, 31 MiB in 32: %v", err)
	}

	// Small segments are not checked.
	write(filepath.Join(root, "sys/memory/x/memory.limit_in_bytes"), "4096")
	if err := checkMemoryLimit(memCheckMin - 1); err != nil {
		t.Errorf("a segment under memCheckMin: %v", err)
	}

	// Nothing readable: nothing checked.
	procSelfCgroup = filepath.Join(root, "none")
	if err := checkMemoryLimit(1 << 40); err != nil {
		t.Errorf("no cgroup information: %v", err)
	}
}

// TestMemoryLimit: a helper in a real 64 MiB memory cgroup asks for a 256
// MiB segment and gets ErrMemoryLimit instead of being OOM-killed.
func TestMemoryLimit(t *testing.T) {
	cgdir, limitFile := makeMemoryCgroup(t, 64<<20)
	dir := t.TempDir()
	k := spawn(t, "memlimit", "SEG_DIR="+dir, "SEG_NAME=big", "SEG_SIZE="+strconv.Itoa(256<<20))
	if err := os.WriteFile(filepath.Join(cgdir, "cgroup.procs"), []byte(strconv.Itoa(k.Pid())), 0); err != nil {
		t.Skipf("cannot move a process into %s: %v", cgdir, err)
	}
	t.Logf("helper in %s (%s)", cgdir, limitFile)
	k.Send("go")
	select {
	case l, ok := <-k.Lines():
		if !ok || l != "error memlimit" {
			<-k.Done()
			t.Fatalf("256 MiB segment in a 64 MiB cgroup: %q (%v)\n%s", l, k.Err(), k.Stderr())
		}
	case <-time.After(patience):
		t.Fatal("no answer")
	}
	if _, err := os.Lstat(filepath.Join(dir, "big")); err == nil {
		t.Error("something was published")
	}
}

// makeMemoryCgroup makes a child of this process's memory cgroup (v2, or
// v1 as on this machine) limited to limit bytes, removed at cleanup, or
// skips.
func makeMemoryCgroup(t *testing.T, limit int64) (dir, limitFile string) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skip(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		var base, lf string
		switch {
		case f[0] == "0" && f[1] == "":
			for _, r := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
				if c, err := os.ReadFile(filepath.Join(r, f[2], "cgroup.controllers")); err == nil && strings.Contains(string(c), "memory") {
					base, lf = filepath.Join(r, f[2]), "memory.max"
				}
			}
		case hasController(f[1], "memory"):
			base, lf = filepath.Join("/sys/fs/cgroup/memory", f[2]), "memory.limit_in_bytes"
		}
		if base == "" {
			continue
		}
		dir := filepath.Join(base, fmt.Sprintf("robustlock-test-%d", os.Getpid()))
		if err := os.Mkdir(dir, 0o755); err != nil {
			continue
		}
		t.Cleanup(func() {
			for range 100 {
				if os.Remove(dir) == nil {
					return
				}
				time.Sleep(50 * time.Millisecond) // the helper's exit is seen a moment later
			}
		})
		if lf == "memory.max" {
			os.WriteFile(filepath.Join(base, "cgroup.subtree_control"), []byte("+memory"), 0)
		}
		if err := os.WriteFile(filepath.Join(dir, lf), []byte(strconv.FormatInt(limit, 10)), 0); err != nil {
			t.Skipf("cannot set %s: %v", lf, err)
		}
		return dir, lf
	}
	t.Skip("no memory cgroup this test can make a child of")
	return "", ""
}

// TestGroupTrust: a segment owned by another user but of one of our groups
// is trusted with TrustGroups when its mode grants the group read and
// write, and not otherwise.
func TestGroupTrust(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	good := validFile(t, 100, 0)
	dir := t.TempDir()
	for _, c := range []struct {
		mode  fs.FileMode
		opts  []Option
		cause error
	}{
		{0o660, nil, ErrForeignOwner},
		{0o660, []Option{TrustGroups(), Mode(0o660)}, nil},
		{0o660, []Option{TrustGroups()}, ErrWideMode},
		{0o640, []Option{TrustGroups(), Mode(0o660)}, ErrForeignOwner},
		{0o606, []Option{TrustGroups(), Mode(0o666)}, ErrForeignOwner},
	} {
		p := filepath.Join(dir, "g")
		os.Remove(p)
		writeFile(good)(t, p)
		os.Chown(p, 4242, os.Getegid())
		os.Chmod(p, c.mode)
		s, err := Open("g", append(c.opts, Dir(dir))...)
		switch {
		case c.cause == nil && err != nil:
			t.Errorf("mode %o, %d options: %v", c.mode, len(c.opts), err)
		case c.cause != nil && !errors.Is(err, c.cause):
			t.Errorf("mode %o, %d options: %v, want %v", c.mode, len(c.opts), err, c.cause)
		}
		if s != nil {
			s.Close()
		}
	}
}

// TestPermissionFirst: a process that may not read and write a file owned
// by another user is told so (ErrPermission), not that the owner is
// untrusted: the one problem it can fix comes first. Runs a helper as
// nobody.
func TestPermissionFirst(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper as another user")
	}
	dir := sharedDir(t)
	good := validFile(t, 100, 0)
	p := filepath.Join(dir, "p")
	writeFile(good)(t, p)
	os.Chown(p, 4242, 4242)
	os.Chmod(p, 0o600)
	bin := nobodyCopy(t)
	cred := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	for _, c := range []struct {
		mode fs.FileMode
		want string
	}{{0o600, "permission"}, {0o666, "foreign"}} {
		os.Chmod(p, c.mode)
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(append(os.Environ(), proctest.HelperEnv("open")...), "SEG_DIR="+dir, "SEG_NAME=p")
		cmd.SysProcAttr = cred
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("helper: %v %s", err, out)
		}
		if got := strings.TrimSpace(string(out)); !strings.Contains(got, map[string]string{
			"permission": "does not grant", "foreign": "untrusted"}[c.want]) {
			t.Errorf("mode %o as nobody: %q, want %s", c.mode, got, c.want)
		}
	}
}

// nobodyCopy copies the test binary where any user can run it.
func nobodyCopy(t *testing.T) string {
	self, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Skip(err)
	}
	p := filepath.Join(sharedDir(t), "segment.test")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAllocateResumes: allocation in pieces survives EINTR (injected, as
// kernels before the 2024 tmpfs fix return it whenever a signal is pending):
// every byte is allocated exactly once, in order, whatever the pattern of
// interruptions; interruptions that never stop end in an error, not a
// hang.
func TestAllocateResumes(t *testing.T) {
	defer func(f func(int, uint32, int64, int64) error) { fallocate = f }(fallocate)
	type call struct{ off, n int64 }
	const size = 300<<20 + 12345
	for _, c := range []struct {
		name string
		intr func(i int, n int64) bool // interrupt call i of n bytes?
	}{
		{"none", func(int, int64) bool { return false }},
		{"every other", func(i int, _ int64) bool { return i%2 == 1 }},
		{"anything over 1 MiB", func(_ int, n int64) bool { return n > 1<<20 }},
		{"anything over the minimum", func(_ int, n int64) bool { return n > allocMin }},
		{"9 of 10", func(i int, _ int64) bool { return i%10 != 0 }},
	} {
		var calls []call
		i := 0
		fallocate = func(fd int, mode uint32, off, n int64) error {
			defer func() { i++ }()
			if c.intr(i, n) {
				return unix.EINTR
			}
			calls = append(calls, call{off, n})
			return nil
		}
		if err := allocate(-1, size); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var next int64
		for _, k := range calls {
			if k.off != next || k.n <= 0 || k.n > allocMax {
				t.Fatalf("%s: piece %+v after %d", c.name, k, next)
			}
			next += k.n
		}
		if next != size {
			t.Errorf("%s: allocated %d of %d", c.name, next, size)
		}
	}
	fallocate = func(int, uint32, int64, int64) error { return unix.EINTR }
	if err := allocate(-1, 1<<20); !errors.Is(err, unix.EINTR) {
		t.Errorf("endless EINTR: %v", err)
	}
	fallocate = func(int, uint32, int64, int64) error { return unix.ENOSPC }
	if err := allocate(-1, 1<<20); !errors.Is(err, unix.ENOSPC) {
		t.Errorf("ENOSPC: %v", err)
	}
}

// TestSignalStorm: a large segment is created while another goroutine
// sends the creating thread signals (SIGURG, which the runtime takes for a
// preemption request, via tgkill) as fast as it can. On kernels before the
// 2024 tmpfs fix (6.1 LTS) each would make fallocate fail with EINTR; creation must succeed
// anyway. (On later kernels it passes either way; TestAllocateResumes
// covers the logic.)
func TestSignalStorm(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=600m,mode=0700"); err == nil {
		t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid, pid := unix.Gettid(), unix.Getpid()
	var stop atomic.Bool
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			if unix.Tgkill(pid, tid, unix.SIGURG) == nil {
				sent.Add(1)
			}
		}
	}()
	for i := range 3 {
		s, err := Open(fmt.Sprintf("storm-%d", i), Dir(dir), Size(128<<20))
		if err != nil {
			stop.Store(true)
			<-done
			t.Fatalf("creation under a signal storm: %v", err)
		}
		s.Close()
		Remove(fmt.Sprintf("storm-%d", i), Dir(dir))
	}
	stop.Store(true)
	<-done
	t.Logf("%d signals sent", sent.Load())
}

// sharedDir makes a temporary directory (mode 0755) that other users can
// reach, unlike t.TempDir's.
func sharedDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "robustlock-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestFailedBuildRechecks: a creator whose build fails (ENOSPC, injected)
// after a racer without the claim published the name gets that racer's
// segment, not the error. An Init failure is still reported.
func TestFailedBuildRechecks(t *testing.T) {
	defer func(f func(int, uint32, int64, int64) error) { fallocate = f }(fallocate)
	dir := t.TempDir()
	racing := false
	fallocate = func(fd int, mode uint32, off, n int64) error {
		if racing {
			return unix.Fallocate(fd, mode, off, n)
		}
		racing = true
		s, err := Open("r", Dir(dir), Size(64), Init(fill("r")), withoutClaim()) // the racer
		if err != nil {
			t.Errorf("racer: %v", err)
		} else {
			s.Close()
		}
		return unix.ENOSPC
	}
	s, err := Open("r", Dir(dir), Size(64), Init(fill("other")))
	if err != nil {
		t.Fatalf("Open whose build failed after a racer published: %v", err)
	}
	if s.Created() || checkPattern("r", s.Data()) >= 0 {
		t.Error("did not get the racer's segment")
	}
	s.Close()
}

// TestPlantedClaim: a claim file planted by an untrusted user, or a FIFO
// or symbolic link at its name, does not stop creation (it goes ahead
// without the claim) and is neither opened nor removed.
func TestPlantedClaim(t *testing.T) {
	for _, plant := range []string{"foreign", "fifo", "symlink"} {
		t.Run(plant, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, claimPrefix+"c")
			switch plant {
			case "foreign":
				if os.Geteuid() != 0 {
					t.Skip("needs root to chown")
				}
				os.WriteFile(p, nil, 0o644)
				os.Chown(p, 4242, 4242)
			case "fifo":
				if err := unix.Mkfifo(p, 0o600); err != nil {
					t.Skip(err)
				}
			case "symlink":
				os.Symlink(filepath.Join(dir, "elsewhere"), p)
			}
			before, _ := os.Lstat(p)
			in, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
			if err != nil {
				t.Skip(err)
			}
			defer unix.Close(in)
			if plant != "symlink" {
				if _, err := unix.InotifyAddWatch(in, p, unix.IN_OPEN|unix.IN_DONT_FOLLOW); err != nil {
					t.Fatal(err)
				}
			}
			s, err := Open("c", Dir(dir), Size(8))
			if err != nil {
				t.Fatalf("creation beside a planted claim: %v", err)
			}
			s.Close()
			after, err := os.Lstat(p)
			if err != nil || !os.SameFile(before, after) {
				t.Errorf("the planted claim was changed: %v", err)
			}
			if _, err := os.Lstat(filepath.Join(dir, "elsewhere")); err == nil {
				t.Error("the symbolic link was followed")
			}
			buf := make([]byte, 4096)
			if n, _ := unix.Read(in, buf); n > 0 {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
				t.Errorf("the planted claim was opened (inotify mask %#x)", ev.Mask)
			}
		})
	}
}

// TestWaitersCostNoThreads: while another process builds a segment (its
// Init waits for the test), 200 goroutines of this process Open the same
// name. They wait for its publication without an OS thread each (only one
// sleeps in flock; the others park on the process's turn for the name),
// then all get the other process's segment.
//
// It counts threads asleep in flock, not the process's threads: the
// waiters' short system calls (opening the directory, looking for the
// segment) can make the runtime start threads that stay idle afterwards,
// as they would for any code that makes system calls, and on a loaded
// machine that count says nothing about the waiting.
func TestWaitersCostNoThreads(t *testing.T) {
	const waiters = 200
	dir := t.TempDir()
	k := spawn(t, "slowinit", "SEG_DIR="+dir, "SEG_NAME=w")
	k.Expect("init")
	before := threads(t)
	errs := make(chan error, waiters)
	for range waiters {
		go func() {
			s, err := Open("w", Dir(dir), Size(4096))
			if err == nil {
				if s.Created() || checkPattern("w", s.Data()) >= 0 {
					err = errors.New("did not get the other process's segment")
				}
				s.Close()
			}
			errs <- err
		}()
	}
	// Wait until one of them sleeps in flock, then watch for a while: if
	// every goroutine took the flock path, they would pile up there.
	inFlock := func() int { return proctest.SyscallSleepers(os.Getpid(), unix.SYS_FLOCK) }
	deadline := time.Now().Add(patience)
	for inFlock() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no waiter went to sleep in flock within %v", patience)
		}
		time.Sleep(time.Millisecond)
	}
	most := 0
	for range 50 {
		most = max(most, inFlock())
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d goroutines waiting: at most %d threads in flock; %d threads before, %d now",
		waiters, most, before, threads(t))
	if most > 1 {
		t.Errorf("%d threads asleep in flock with %d goroutines waiting for one creator, want 1", most, waiters)
	}
	k.Send("go")
	k.Expect("created")
	for range waiters {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(patience):
			t.Fatal("waiters did not finish")
		}
	}
	k.CloseStdin()
}

func threads(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Skip("no Threads in /proc/self/status")
	return 0
}
