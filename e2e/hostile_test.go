//go:build linux

package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock/segment"
)

// A watcher reports, through inotify, every open, write, attribute change,
// removal or move of the files it watches: stronger than comparing
// snapshots, which cannot see an open.
type watcher struct {
	t   *testing.T
	fd  int
	wds map[int32]string
}

const watchMask = unix.IN_OPEN | unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_CLOSE_NOWRITE |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

func newWatcher(t *testing.T) *watcher {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Skipf("no inotify: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &watcher{t: t, fd: fd, wds: map[int32]string{}}
}

// watch watches path itself (a symbolic link is not followed).
func (w *watcher) watch(path string) {
	wd, err := unix.InotifyAddWatch(w.fd, path, watchMask|unix.IN_DONT_FOLLOW)
	if err != nil {
		w.t.Fatalf("inotify on %s: %v", path, err)
	}
	w.wds[int32(wd)] = path
}

// events returns what happened since the last call, as "path: EVENT".
func (w *watcher) events() []string {
	var out []string
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(w.fd, buf)
		if err != nil || n <= 0 {
			return out
		}
		for b := buf[:n]; len(b) >= unix.SizeofInotifyEvent; {
			wd := int32(binary.NativeEndian.Uint32(b[0:]))
			mask := binary.NativeEndian.Uint32(b[4:])
			l := int(binary.NativeEndian.Uint32(b[12:]))
			for _, e := range []struct {
				bit  uint32
				name string
			}{{unix.IN_OPEN, "OPEN"}, {unix.IN_MODIFY, "MODIFY"}, {unix.IN_ATTRIB, "ATTRIB"},
				{unix.IN_CLOSE_WRITE, "CLOSE_WRITE"}, {unix.IN_CLOSE_NOWRITE, "CLOSE_NOWRITE"},
				{unix.IN_DELETE_SELF, "DELETE_SELF"}, {unix.IN_MOVE_SELF, "MOVE_SELF"}} {
				if mask&e.bit != 0 {
					out = append(out, w.wds[wd]+": "+e.name)
				}
			}
			b = b[unix.SizeofInotifyEvent+l:]
		}
	}
}

// snapshot is what must not change: type, mode, owner, size, times,
// inode, device number, link target, contents.
type snapshot struct {
	st   unix.Stat_t
	link string
	data []byte
}

func takeSnapshot(t *testing.T, path string) snapshot {
	t.Helper()
	var s snapshot
	if err := unix.Lstat(path, &s.st); err != nil {
		t.Fatal(err)
	}
	switch s.st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		s.link, _ = os.Readlink(path)
	case unix.S_IFREG:
		// Read through /proc/self/fd of an O_PATH descriptor would also
		// do; a plain read is fine: we take snapshots before watching.
		s.data, _ = os.ReadFile(path)
	}
	s.st.Atim = unix.Timespec{} // reading for the snapshot may move atime
	return s
}

func (a snapshot) diff(b snapshot) string {
	switch {
	case a.st.Mode != b.st.Mode:
		return fmt.Sprintf("mode %o -> %o", a.st.Mode, b.st.Mode)
	case a.st.Uid != b.st.Uid:
		return "owner changed"
	case a.st.Size != b.st.Size:
		return fmt.Sprintf("size %d -> %d", a.st.Size, b.st.Size)
	case a.st.Mtim != b.st.Mtim:
		return "mtime changed"
	case a.st.Ctim != b.st.Ctim:
		return "ctime changed"
	case a.st.Ino != b.st.Ino:
		return "replaced (inode changed)"
	case a.st.Rdev != b.st.Rdev:
		return "device number changed"
	case a.link != b.link:
		return "link target changed"
	case !bytes.Equal(a.data, b.data):
		return "contents changed"
	}
	return ""
}

// validSegmentBytes returns the bytes of a freshly made segment whose data
// is filled with fill.
func validSegmentBytes(t *testing.T, fill byte) []byte {
	t.Helper()
	dir := t.TempDir()
	s, err := segment.Open("v", segment.Dir(dir), segment.Size(64), segment.Init(func(d []byte) error {
		for i := range d {
			d[i] = fill
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, err := os.ReadFile(filepath.Join(dir, "v"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// within runs f and fails the test if it has not returned after d.
func within(t *testing.T, what string, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s blocked for %v", what, d)
	}
}

// TestPlantedFiles plants, at a segment's name, each kind of thing an
// attacker sharing the directory can make, and runs every entry point of
// package segment on it (Open to open, to create, CreateOnly, Stat, List,
// Remove). Each must fail with its typed error, never block, and never
// open, truncate, write, chmod, remove or follow what was planted
// (inotify watches it, and its target for symbolic links). Another user's
// valid segment may be read by Stat and List (documented) but never
// opened by Open, and TrustOwner shows the watcher does see an open.
func TestPlantedFiles(t *testing.T) {
	root := os.Geteuid() == 0
	valid := validSegmentBytes(t, 0x5a)
	elsewhere := t.TempDir()
	target := filepath.Join(elsewhere, "target") // a valid segment, reachable only by following a link
	if err := os.WriteFile(target, valid, 0o600); err != nil {
		t.Fatal(err)
	}
	type plant struct {
		name  string
		cause error
		make  func(t *testing.T, path string) (cleanup func())
		root  bool
	}
	fifo := func(t *testing.T, path string) func() {
		if err := unix.Mkfifo(path, 0o666); err != nil {
			t.Fatal(err)
		}
		return nil
	}
	plants := []plant{
		{"symlink-to-a-valid-segment", segment.ErrSymlink, func(t *testing.T, path string) func() {
			return nil2(os.Symlink(target, path), t)
		}, false},
		{"dangling-symlink", segment.ErrSymlink, func(t *testing.T, path string) func() {
			return nil2(os.Symlink(filepath.Join(elsewhere, "would-be-created"), path), t)
		}, false},
		{"symlink-to-dir", segment.ErrSymlink, func(t *testing.T, path string) func() {
			return nil2(os.Symlink(elsewhere, path), t)
		}, false},
		{"fifo", segment.ErrNotRegular, fifo, false},
		{"socket", segment.ErrNotRegular, func(t *testing.T, path string) func() {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Skipf("unix socket: %v", err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			return func() { l.Close() }
		}, false},
		{"directory", segment.ErrNotRegular, func(t *testing.T, path string) func() {
			return nil2(os.Mkdir(path, 0o700), t)
		}, false},
		{"char-device", segment.ErrNotRegular, func(t *testing.T, path string) func() {
			return nil2(unix.Mknod(path, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))), t) // like /dev/null
		}, true},
		{"block-device", segment.ErrNotRegular, func(t *testing.T, path string) func() {
			return nil2(unix.Mknod(path, unix.S_IFBLK|0o666, int(unix.Mkdev(7, 200))), t) // a loop device number
		}, true},
		{"other-users-segment", segment.ErrForeignOwner, func(t *testing.T, path string) func() {
			if err := os.WriteFile(path, valid, 0o666); err != nil {
				t.Fatal(err)
			}
			return nil2(os.Chown(path, 4242, 4242), t)
		}, true},
	}
	for _, p := range plants {
		t.Run(p.name, func(t *testing.T) {
			if p.root && !root {
				t.Skip("needs root (mknod, chown)")
			}
			dir := t.TempDir()
			os.Chmod(dir, 0o777|os.ModeSticky) // like /dev/shm: sticky, writable by all (os.Chmod ignores a raw 0o1000)
			path := filepath.Join(dir, "seg")
			if c := p.make(t, path); c != nil {
				defer c()
			}
			before := takeSnapshot(t, path)
			tgtBefore := takeSnapshot(t, target)
			w := newWatcher(t)
			w.watch(path)
			w.watch(target)
			w.watch(elsewhere)

			// A blocked reader on a FIFO returns as soon as anyone opens it
			// for writing: a second witness.
			var fifoOpened atomic.Bool
			var fifoReader sync.WaitGroup
			if p.name == "fifo" {
				fifoReader.Add(1)
				go func() {
					defer fifoReader.Done()
					fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
					fifoOpened.Store(true)
					if err == nil {
						unix.Close(fd)
					}
				}()
				time.Sleep(20 * time.Millisecond) // let it block
				w.events()                        // its own open is not news
			}
			opts := []segment.Option{segment.Dir(dir)}
			type call struct {
				name string
				f    func() error
			}
			calls := []call{
				{"Open", func() error {
					s, err := segment.Open("seg", append(opts, segment.OpenOnly())...)
					closeIf(s)
					return err
				}},
				{"Open+Size", func() error { s, err := segment.Open("seg", append(opts, segment.Size(64))...); closeIf(s); return err }},
				{"Open+Size+CreateOnly", func() error {
					s, err := segment.Open("seg", append(opts, segment.Size(64), segment.CreateOnly())...)
					closeIf(s)
					return err
				}},
			}
			for _, c := range calls {
				var err error
				within(t, c.name, 5*time.Second, func() { err = c.f() })
				var se *segment.Error
				switch {
				case err == nil:
					t.Errorf("%s on a planted %s succeeded", c.name, p.name)
				case !errors.As(err, &se):
					t.Errorf("%s: %v is not a *segment.Error", c.name, err)
				case c.name == "Open+Size+CreateOnly" && errors.Is(err, segment.ErrExist):
				case !errors.Is(err, p.cause):
					t.Errorf("%s: %v, want %v", c.name, err, p.cause)
				}
			}
			if ev := w.events(); len(ev) > 0 {
				t.Errorf("Open touched what was planted: %v", ev)
			}
			// Stat, List and Remove.
			var serr, rerr error
			var infos []segment.Info
			within(t, "Stat", 5*time.Second, func() { _, serr = segment.Stat("seg", opts...) })
			within(t, "List", 5*time.Second, func() { infos, _ = segment.List(opts...) })
			if !errors.Is(serr, p.cause) && p.cause != segment.ErrForeignOwner {
				t.Errorf("Stat: %v, want %v", serr, p.cause)
			}
			foreign := p.cause == segment.ErrForeignOwner
			if foreign {
				// Documented: Stat and List may read other users' segments.
				if serr != nil || len(infos) != 1 || infos[0].UID != 4242 {
					t.Errorf("Stat of another user's segment: %v; List: %v", serr, infos)
				}
			} else if len(infos) != 0 {
				t.Errorf("List shows a planted %s: %v", p.name, infos)
			} else {
				within(t, "Remove", 5*time.Second, func() { rerr = segment.Remove("seg", opts...) })
				if rerr == nil {
					t.Errorf("Remove of a planted %s succeeded", p.name)
				}
			}
			for _, ev := range w.events() {
				if foreign && (strings.HasSuffix(ev, ": OPEN") || strings.HasSuffix(ev, ": CLOSE_NOWRITE")) &&
					strings.HasPrefix(ev, path) {
					continue // a read by Stat or List
				}
				t.Errorf("Stat, List or Remove touched what was planted: %s", ev)
			}
			if d := before.diff(takeSnapshot(t, path)); d != "" {
				t.Errorf("the planted %s changed: %s", p.name, d)
			}
			if d := tgtBefore.diff(takeSnapshot(t, target)); d != "" {
				t.Errorf("the symbolic link's target changed: %s", d)
			}
			if _, err := os.Lstat(filepath.Join(elsewhere, "would-be-created")); err == nil {
				t.Errorf("a dangling symbolic link was followed: its target was created")
			}
			if p.name == "fifo" {
				if fifoOpened.Load() {
					t.Errorf("the FIFO was opened for writing")
				}
				fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0) // release the reader
				if err == nil {
					unix.Close(fd)
				}
				fifoReader.Wait()
			}
			if foreign {
				// Positive control: trusted, it opens, and the watcher sees it.
				s, err := segment.Open("seg", append(opts, segment.OpenOnly(), segment.TrustOwner(4242), segment.Mode(0o666))...)
				if err != nil {
					t.Fatalf("with TrustOwner: %v", err)
				}
				s.Close()
				if ev := w.events(); len(ev) == 0 {
					t.Errorf("the watcher saw nothing when the segment was opened: it proves nothing")
				}
			}
		})
	}
}

func nil2(err error, t *testing.T) func() {
	if err != nil {
		t.Fatal(err)
	}
	return nil
}

func closeIf(s *segment.Segment) {
	if s != nil {
		s.Close()
	}
}

// TestNameSwapRace: while Open, Stat and Remove run in a loop, another
// goroutine keeps renaming over the segment's name a valid segment, a
// symbolic link to a victim, a FIFO and garbage. Whatever interleaving
// happens, nothing blocks, the victim (reachable only through the link) is
// never opened or changed, and every Open that succeeds has a whole, valid
// segment.
func TestNameSwapRace(t *testing.T) {
	dur := 2 * time.Second
	if testing.Short() {
		dur = 500 * time.Millisecond
	}
	dir := t.TempDir()
	valid := validSegmentBytes(t, 0x5a)
	victimDir := t.TempDir()
	victim := filepath.Join(victimDir, "victim")
	if err := os.WriteFile(victim, validSegmentBytes(t, 0x66), 0o600); err != nil {
		t.Fatal(err)
	}
	vBefore := takeSnapshot(t, victim)
	w := newWatcher(t)
	w.watch(victim)

	stop := make(chan struct{})
	var swaps atomic.Int64
	go func() {
		stage := filepath.Join(dir, ".stage")
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			os.Remove(stage)
			var err error
			switch i % 4 {
			case 0:
				err = os.WriteFile(stage, valid, 0o600)
			case 1:
				err = os.Symlink(victim, stage)
			case 2:
				err = unix.Mkfifo(stage, 0o600)
			case 3:
				err = os.WriteFile(stage, []byte("RLOCKSEG but not really a segment"), 0o600)
			}
			if err == nil && os.Rename(stage, filepath.Join(dir, "seg")) == nil {
				swaps.Add(1)
			}
		}
	}()
	opened, failed := 0, map[string]int{}
	deadline := time.Now().Add(dur)
	for time.Now().Before(deadline) {
		var s *segment.Segment
		var err error
		within(t, "Open during renames", 5*time.Second, func() {
			s, err = segment.Open("seg", segment.Dir(dir), segment.OpenOnly())
		})
		if err == nil {
			opened++
			d := s.Data()
			if len(d) != 64 || bytes.Count(d, []byte{0x5a}) != 64 {
				t.Errorf("Open during renames returned a segment with data % x", d)
			}
			s.Close()
		} else {
			var se *segment.Error
			if !errors.As(err, &se) {
				t.Errorf("untyped error %v", err)
			}
			failed[errors.Unwrap(err).Error()]++
		}
		within(t, "Stat during renames", 5*time.Second, func() { segment.Stat("seg", segment.Dir(dir)) })
	}
	close(stop)
	t.Logf("%d renames; %d opens of the valid segment; failures: %d kinds", swaps.Load(), opened, len(failed))
	if ev := w.events(); len(ev) > 0 {
		t.Errorf("the victim behind the symbolic link was touched: %v", ev)
	}
	if d := vBefore.diff(takeSnapshot(t, victim)); d != "" {
		t.Errorf("the victim changed: %s", d)
	}
	if opened == 0 {
		t.Log("no Open met the valid segment (timing); the test still checked that nothing else was followed")
	}
}

// TestRenameAway: another user (nobody, with mv) renames a live segment
// out of the way so that the next Open creates a second one and two
// processes hold "the" lock. In a directory others may rename entries in
// (0777, no sticky bit) Open refuses to start (ErrUnsafeDir); in a sticky
// one (1777, like /dev/shm) the rename fails, and the next Open meets the
// same segment.
func TestRenameAway(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run mv as another user")
	}
	if _, err := exec.LookPath("mv"); err != nil {
		t.Skip("no mv")
	}
	mv := func(dir string, name ...string) error {
		n := append(name, "seg")[0]
		cmd := exec.Command("mv", filepath.Join(dir, n), filepath.Join(dir, n+".old"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		return cmd.Run()
	}
	for _, c := range []struct {
		name string
		mode os.FileMode
	}{{"world-writable", 0o777}, {"sticky", 0o777 | os.ModeSticky}} {
		t.Run(c.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "robustlock-rename-")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			if err := os.Chmod(dir, c.mode); err != nil {
				t.Fatal(err)
			}
			first, err := segment.Open("seg", segment.Dir(dir), segment.Size(64))
			if c.mode&os.ModeSticky == 0 {
				if !errors.Is(err, segment.ErrUnsafeDir) {
					t.Fatalf("Open in a %o directory: %v, want ErrUnsafeDir", c.mode, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			if err := first.Mutex().Lock(); err != nil {
				t.Fatal(err)
			}
			defer first.Mutex().Unlock()
			if err := mv(dir); err == nil {
				t.Fatal("another user renamed our segment away in a sticky directory")
			}
			// Control: that user can rename its own files there.
			own := filepath.Join(dir, "own")
			os.WriteFile(own, nil, 0o600)
			os.Chown(own, 65534, 65534)
			if err := mv(dir, "own"); err != nil {
				t.Fatalf("nobody cannot even rename its own file (%v): the test proves nothing", err)
			}
			second, err := segment.Open("seg", segment.Dir(dir), segment.Size(64))
			if err != nil {
				t.Fatal(err)
			}
			defer second.Close()
			if second.Created() {
				t.Fatal("a second segment was created under the name")
			}
			if second.Mutex().TryLock() == nil {
				t.Error("the second Open's lock is free while the first holds it")
			}
		})
	}
}
