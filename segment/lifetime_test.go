//go:build linux

package segment

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
)

func mustOpen(t *testing.T, name string, opts ...Option) *Segment {
	t.Helper()
	s, err := Open(name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCloseWhileHeld: Close refuses while this process holds a mutex of
// the segment, leaving it mapped and usable; after Unlock it unmaps, and
// every later use reports ErrClosed instead of touching the memory.
func TestCloseWhileHeld(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, "held", Dir(dir), Size(64), Mutexes(2), Init(fill("held")))
	for _, i := range []int{0, 2} {
		m, err := s.MutexN(i)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Lock(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); !errors.Is(err, ErrInUse) {
			t.Fatalf("Close with mutex %d held: %v", i, err)
		}
		s.Data()[0] = 42 // still mapped
		if s.Data()[0] != 42 || s.Mutex() == nil {
			t.Fatal("segment unusable after a refused Close")
		}
		if err := m.Unlock(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if s.Data() != nil || s.Mutex() != nil {
		t.Error("Data or Mutex not nil after Close")
	}
	if _, err := s.MutexN(1); !errors.Is(err, ErrClosed) {
		t.Errorf("MutexN after Close: %v", err)
	}
	if s.Name() != "held" || s.Header().DataSize != 64 {
		t.Error("name and header must survive Close")
	}
}

// TestOwnerDied: a process holding the segment's lock is SIGKILLed; this
// process, which opened the segment by name, gets ErrOwnerDied.
func TestOwnerDied(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, "od", Dir(dir), Size(8), Init(fill("od")))
	defer s.Close()
	k := spawn(t, "hold", "SEG_DIR="+dir, "SEG_NAME=od", "SEG_MUTEX=0")
	line := k.NextBefore(time.Now().Add(patience))
	tid, err := strconv.Atoi(strings.TrimPrefix(line, "locked "))
	if err != nil {
		t.Fatalf("helper: %q", line)
	}
	if info, err := Stat("od", Dir(dir)); err != nil || info.Mutexes[0].Owner != tid {
		t.Fatalf("Stat: %+v, %v; want owner %d", info.Mutexes, err, tid)
	}
	k.Kill()
	if info, err := Stat("od", Dir(dir)); err != nil || !info.Mutexes[0].OwnerDied {
		t.Fatalf("Stat after the kill: %+v, %v", info.Mutexes, err)
	}
	m := s.Mutex()
	if err := m.Lock(); !errors.Is(err, robustlock.ErrOwnerDied) {
		t.Fatalf("Lock: %v, want ErrOwnerDied", err)
	}
	if err := m.MarkConsistent(); err != nil {
		t.Fatal(err)
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock after recovery: %v", err)
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// TestCloseWhileBusy: a goroutine of this process sleeps in Lock on an
// extra mutex another process holds. This process holds nothing, yet the
// thread's robust list points into the mapping, so Close must refuse.
// When the holder is killed, the sleeper wakes with ErrOwnerDied.
func TestCloseWhileBusy(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, "busy", Dir(dir), Size(8), Mutexes(1))
	k := spawn(t, "hold", "SEG_DIR="+dir, "SEG_NAME=busy", "SEG_MUTEX=1")
	if l := k.NextBefore(time.Now().Add(patience)); !strings.HasPrefix(l, "locked") {
		t.Fatalf("helper: %q", l)
	}
	m, _ := s.MutexN(1)
	got := make(chan error, 1)
	go func() {
		err := m.Lock()
		if errors.Is(err, robustlock.ErrOwnerDied) {
			m.MarkConsistent()
			err = m.Unlock()
			if err == nil {
				err = robustlock.ErrOwnerDied
			}
		}
		got <- err
	}()
	mem := s.m.Load().mem
	for deadline := time.Now().Add(patience); !robustlock.Busy(mem); {
		if time.Now().After(deadline) {
			t.Fatal("the locking goroutine never became busy")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); !errors.Is(err, ErrInUse) {
		t.Fatalf("Close while a thread sleeps in Lock: %v", err)
	}
	k.Kill()
	select {
	case err := <-got:
		if !errors.Is(err, robustlock.ErrOwnerDied) {
			t.Fatalf("sleeper: %v, want ErrOwnerDied", err)
		}
	case <-time.After(patience):
		t.Fatal("the sleeper was not woken by the holder's death")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRemoveReopen: Remove frees the name at once; the old mapping goes on
// working, and the next Open with a Size makes a new, separate segment.
func TestRemoveReopen(t *testing.T) {
	dir := t.TempDir()
	old := mustOpen(t, "rr", Dir(dir), Size(100), Init(fill("one")))
	defer old.Close()
	if err := Remove("rr", Dir(dir)); err != nil {
		t.Fatal(err)
	}
	if err := Remove("rr", Dir(dir)); !errors.Is(err, ErrNotExist) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("second Remove: %v", err)
	}
	if _, err := Stat("rr", Dir(dir)); !errors.Is(err, ErrNotExist) {
		t.Errorf("Stat after Remove: %v", err)
	}
	for _, opts := range [][]Option{{OpenOnly(), Size(100)}, {}} {
		if _, err := Open("rr", append(opts, Dir(dir))...); !errors.Is(err, ErrNotExist) {
			t.Errorf("Open without creating after Remove: %v", err)
		}
	}
	if checkPattern("one", old.Data()) >= 0 {
		t.Fatal("old mapping lost its data")
	}
	if err := old.Mutex().Lock(); err != nil {
		t.Fatal(err)
	}
	if err := old.Mutex().Unlock(); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, "rr", Dir(dir), Size(100), Init(fill("two")))
	defer s.Close()
	if !s.Created() || checkPattern("two", s.Data()) >= 0 {
		t.Fatal("re-Open did not create a new segment")
	}
	old.Data()[0] = 0
	if s.Data()[0] != pattern("two", 0) || old.Data()[0] != 0 {
		t.Fatal("old and new segments share memory")
	}
}

// TestMode: a new segment's permissions are Mode with the umask cleared,
// on both publication paths.
func TestMode(t *testing.T) {
	paths(t, func(t *testing.T, fallback bool) {
		dir := t.TempDir()
		for _, mask := range []int{0, 0o022, 0o077} {
			for _, mode := range []fs.FileMode{0o600, 0o640, 0o666} {
				name := fmt.Sprintf("m%o-%o", mask, mode)
				opts := []Option{Dir(dir), Size(1), Mode(mode)}
				if fallback {
					opts = append(opts, withFallback())
				}
				old := unix.Umask(mask)
				s, err := Open(name, opts...)
				unix.Umask(old)
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				fi, err := os.Stat(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if want := mode &^ fs.FileMode(mask); fi.Mode().Perm() != want {
					t.Errorf("Mode(%o) under umask %o: file has %o, want %o", mode, mask, fi.Mode().Perm(), want)
				}
			}
		}
		s := mustOpen(t, "default", Dir(dir), Size(1))
		s.Close()
		if info, err := Stat("default", Dir(dir)); err != nil || info.Mode&^DefaultMode != 0 || info.UID != os.Geteuid() {
			t.Errorf("default mode: %+v, %v", info, err)
		}
	})
}

// TestInitFailure: an Init that fails or panics publishes nothing, leaves
// nothing behind, and its error reaches the caller.
func TestInitFailure(t *testing.T) {
	paths(t, func(t *testing.T, fallback bool) {
		dir := t.TempDir()
		mine := errors.New("mine")
		opt := func(fn func([]byte) error) []Option {
			opts := []Option{Dir(dir), Size(10), Init(fn)}
			if fallback {
				opts = append(opts, withFallback())
			}
			return opts
		}
		for _, c := range []struct {
			name string
			fn   func([]byte) error
			want []error
		}{
			{"error", func([]byte) error { return mine }, []error{ErrInit, mine}},
			{"panic error", func([]byte) error { panic(mine) }, []error{ErrInit, mine}},
			{"panic string", func([]byte) error { panic("boom") }, []error{ErrInit}},
			{"runtime error", func(b []byte) error { _ = b[len(b)+1]; return nil }, []error{ErrInit}},
		} {
			temps := -1
			_, err := Open("f", opt(func(b []byte) error {
				temps = 0 // the draft's own, on the fallback path (the claim is not one)
				for _, n := range temporaries(t, dir) {
					if strings.HasPrefix(n, tmpPrefix) {
						temps++
					}
				}
				return c.fn(b)
			})...)
			for _, w := range c.want {
				if !errors.Is(err, w) {
					t.Errorf("%s: %v does not wrap %v", c.name, err, w)
				}
			}
			if want := map[bool]int{false: 0, true: 1}[fallback]; temps != want {
				t.Errorf("%s: %d temporaries during Init, want %d", c.name, temps, want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("%s: left %d entries", c.name, len(ents))
			}
		}
		s := mustOpen(t, "f", opt(fill("f"))...)
		if !s.Created() {
			t.Error("not created after the failures")
		}
		s.Close()
	})
}

// TestOpenModes: CreateOnly, OpenOnly and the absence of Size.
func TestOpenModes(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open("x", Dir(dir), OpenOnly(), Size(5)); !errors.Is(err, ErrNotExist) {
		t.Errorf("OpenOnly on nothing: %v", err)
	}
	if _, err := Open("x", Dir(dir)); !errors.Is(err, ErrNotExist) {
		t.Errorf("no Size on nothing: %v", err)
	}
	if _, err := Open("x", Dir(dir), CreateOnly()); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("CreateOnly without Size: %v", err)
	}
	if _, err := Open("x", Dir(dir), CreateOnly(), OpenOnly(), Size(1)); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("CreateOnly with OpenOnly: %v", err)
	}
	for _, o := range []Option{Size(-1), Size(MaxSize + 1), Mutexes(-1), Mutexes(MaxMutexes + 1), Mode(0o1000), Dir(""), TrustOwner(-1)} {
		if _, err := Open("x", Dir(dir), o); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("bad option: %v", err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %d entries", len(ents))
	}
	s := mustOpen(t, "x", Dir(dir), CreateOnly(), Size(5))
	defer s.Close()
	if !s.Created() {
		t.Error("CreateOnly did not create")
	}
	if _, err := Open("x", Dir(dir), CreateOnly(), Size(5)); !errors.Is(err, ErrExist) || !errors.Is(err, fs.ErrExist) {
		t.Errorf("CreateOnly on an existing one: %v", err)
	}
	s2 := mustOpen(t, "x", Dir(dir), OpenOnly())
	defer s2.Close()
	if s2.Created() || len(s2.Data()) != 5 {
		t.Error("OpenOnly")
	}
	if _, err := Open("x", Dir(filepath.Join(dir, "nope")), Size(1)); err == nil || errors.Is(err, ErrNotExist) {
		t.Errorf("missing directory: %v", err)
	}
}

// TestMutexes: the extra mutexes are distinct, aligned, independent.
func TestMutexes(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, "mx", Dir(dir), Size(0), Mutexes(3))
	defer s.Close()
	if s.NumMutexes() != 4 || len(s.Data()) != 0 {
		t.Fatalf("%d mutexes, %d data bytes", s.NumMutexes(), len(s.Data()))
	}
	m0, _ := s.MutexN(0)
	if m0 != s.Mutex() {
		t.Error("MutexN(0) is not Mutex()")
	}
	for _, i := range []int{-1, 4} {
		if _, err := s.MutexN(i); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("MutexN(%d): %v", i, err)
		}
	}
	var ms []*robustlock.Mutex
	for i := range 4 {
		m, err := s.MutexN(i)
		if err != nil {
			t.Fatal(err)
		}
		if st := m.State(); st.Kind != robustlock.KindRobustNormal || st.Owner != 0 {
			t.Errorf("mutex %d not initialised: %v", i, st)
		}
		ms = append(ms, m)
	}
	for _, m := range ms {
		if err := m.Lock(); err != nil {
			t.Fatal(err)
		}
	}
	info, err := Stat("mx", Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range info.Mutexes {
		if st.Owner == 0 {
			t.Errorf("Stat: mutex %d not held", i)
		}
	}
	for _, m := range slices.Backward(ms) {
		if err := m.Unlock(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStatList: List finds the segments and only them; Stat reports the
// header and the mutexes' states.
func TestStatList(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"c", "a", "b"} {
		s := mustOpen(t, n, Dir(dir), Size(len(n)*10), Mutexes(len(n)))
		s.Close()
	}
	good, _ := os.ReadFile(filepath.Join(dir, "a"))
	os.WriteFile(filepath.Join(dir, "junk"), []byte("not a segment at all, not at all"), 0o600)
	os.WriteFile(filepath.Join(dir, tmpPrefix+"1-2-3-4"), good, 0o600)
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600)
	os.Symlink(filepath.Join(dir, "a"), filepath.Join(dir, "link"))
	os.Mkdir(filepath.Join(dir, "d"), 0o700)
	infos, err := List(Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range infos {
		names = append(names, in.Name)
	}
	if !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Fatalf("List: %q", names)
	}
	in := infos[0]
	if in.Path != filepath.Join(dir, "a") || in.DataSize != 10 || in.MutexCount != 2 || len(in.Mutexes) != 2 ||
		in.CreatorPID != os.Getpid() || in.PIDNamespace != pidNamespace() || time.Since(in.Created) > time.Minute ||
		in.UID != os.Geteuid() || in.Version != Version || in.MutexSize != robustlock.Size {
		t.Errorf("Info: %+v", in)
	}
	s := mustOpen(t, "b", Dir(dir))
	defer s.Close()
	if err := s.Mutex().Lock(); err != nil {
		t.Fatal(err)
	}
	tid := unix.Gettid() // Lock pinned this goroutine to its thread
	info, err := Stat("b", Dir(dir))
	s.Mutex().Unlock()
	if err != nil || info.Mutexes[0].Owner != tid || info.Mutexes[1].Owner != 0 {
		t.Errorf("Stat of a held lock: %+v, %v; want owner %d", info.Mutexes, err, tid)
	}
	if _, err := List(Dir(filepath.Join(dir, "nope"))); err == nil {
		t.Error("List of a missing directory")
	}
	runtime.KeepAlive(s)
}

// TestSweep: creation on the named-temporary path sweeps exactly the
// temporaries of dead creators of this PID namespace owned by this user.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Skip("no /bin/true to make a dead pid with")
	}
	deadPID := cmd.Process.Pid
	ns, me, start := pidNamespace(), os.Getpid(), selfStart()
	tmp := func(ns uint64, pid int, start uint64) string {
		return fmt.Sprintf("%s%d-%d-%d-00000000deadbeef", tmpPrefix, ns, pid, start)
	}
	swept := []string{tmp(ns, deadPID, 0), tmp(ns, deadPID, 77)}
	kept := []string{tmp(ns, me, start), tmp(ns+1, deadPID, 0), tmpPrefix + "garbage", tmpPrefix + "1-2-3"}
	if start != 0 {
		swept = append(swept, tmp(ns, me, start+1)) // a reused pid
	}
	for _, n := range append(slices.Clone(swept), kept...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() == 0 {
		n := tmp(ns, deadPID, 1)
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
		os.Chown(filepath.Join(dir, n), 65534, 65534)
		kept = append(kept, n)
	}
	s := mustOpen(t, "s", Dir(dir), Size(1), withFallback())
	s.Close()
	left := temporaries(t, dir)
	slices.Sort(left)
	slices.Sort(kept)
	if !slices.Equal(left, kept) {
		t.Errorf("after the sweep: %q\nwant %q", left, kept)
	}
}

// TestTmpfilePath: where the filesystem has O_TMPFILE and /proc is
// mounted, the unnamed-file path is the one taken (so the "tmpfile"
// subtests test it).
func TestTmpfilePath(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Skipf("no O_TMPFILE in %s: %v", dir, err)
	}
	works := procFDWorks(fd)
	unix.Close(fd)
	if !works {
		t.Skip("no /proc/self/fd")
	}
	d, err := openDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)
	c := newConfig(nil)
	dr, err := newDraft(d, &c)
	if err != nil {
		t.Fatal(err)
	}
	defer dr.discard()
	if dr.tmp != "" {
		t.Errorf("took the fallback path (%s)", dr.tmp)
	}
}

// TestPIDNamespace: a process in another PID namespace is refused by
// default and let in by AllowOtherPIDNamespace.
func TestPIDNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for CLONE_NEWPID")
	}
	dir := t.TempDir()
	s := mustOpen(t, "ns", Dir(dir), Size(1))
	defer s.Close()
	for _, allow := range []string{"", "1"} {
		k, err := start(t, "open", &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID},
			"SEG_DIR="+dir, "SEG_NAME=ns", "SEG_ALLOW="+allow)
		if err != nil {
			t.Skipf("cannot start a process in a new PID namespace: %v", err)
		}
		t.Cleanup(k.Kill)
		got := k.NextBefore(time.Now().Add(patience))
		want := map[string]string{"": "error pidns", "1": "ok 1"}[allow]
		if got != want {
			t.Errorf("allow=%q: helper said %q, want %q", allow, got, want)
		}
		k.Wait()
	}
}
