//go:build linux

package segment

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
)

// validFile returns the bytes of a freshly created segment.
func validFile(t *testing.T, size, extra int) []byte {
	t.Helper()
	dir := t.TempDir()
	s, err := Open("v", Dir(dir), Size(size), Mutexes(extra), Init(fill("v")))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := os.ReadFile(filepath.Join(dir, "v"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// snapshot is what a failed Open must leave exactly as it was.
type snapshot struct {
	mode  fs.FileMode
	size  int64
	mtime time.Time
	ctime syscall.Timespec
	ino   uint64
	uid   uint32
	data  []byte
	link  string
}

func snap(t *testing.T, path string) snapshot {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	s := snapshot{mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime(), ctime: st.Ctim, ino: st.Ino, uid: st.Uid}
	switch {
	case fi.Mode().IsRegular():
		if s.data, err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	case fi.Mode()&fs.ModeSymlink != 0:
		if s.link, err = os.Readlink(path); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (a snapshot) equal(b snapshot) bool {
	return a.mode == b.mode && a.size == b.size && a.mtime.Equal(b.mtime) && a.ctime == b.ctime &&
		a.ino == b.ino && a.uid == b.uid && bytes.Equal(a.data, b.data) && a.link == b.link
}

// within runs f, failing the test if it has not returned after d (a FIFO
// that blocks an open, say).
func within[T any](t *testing.T, d time.Duration, f func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatal("blocked")
	}
	var zero T
	return zero
}

func put32(b []byte, off int, v uint32) []byte { ne.PutUint32(b[off:], v); return b }
func put64(b []byte, off int, v uint64) []byte { ne.PutUint64(b[off:], v); return b }
func put16(b []byte, off int, v uint16) []byte { ne.PutUint16(b[off:], v); return b }

func writeFile(b []byte) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBadFiles plants every kind of wrong file at a segment's name. Open
// (asked to open or create), Stat and Remove must each return the typed
// error, never panic or block, and leave the file exactly as it was.
func TestBadFiles(t *testing.T) {
	const size = 1000
	good := validFile(t, size, 0)
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rand.Uint32())
	}
	otherTarget := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(otherTarget, good, 0o600); err != nil {
		t.Fatal(err)
	}

	type bad struct {
		name   string
		plant  func(t *testing.T, path string)
		opts   []Option
		want   error // from Open
		stat   error // from Stat; nil: Stat succeeds
		remove bool  // Remove refuses too (the file is no segment)
	}
	cases := []bad{
		{name: "symlink to a segment", plant: func(t *testing.T, p string) {
			if err := os.Symlink(otherTarget, p); err != nil {
				t.Fatal(err)
			}
		}, want: ErrSymlink, stat: ErrSymlink, remove: true},
		{name: "dangling symlink", plant: func(t *testing.T, p string) {
			if err := os.Symlink(filepath.Join(filepath.Dir(p), "nowhere"), p); err != nil {
				t.Fatal(err)
			}
		}, want: ErrSymlink, stat: ErrSymlink, remove: true},
		{name: "directory", plant: func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		}, want: ErrNotRegular, stat: ErrNotRegular, remove: true},
		{name: "fifo", plant: func(t *testing.T, p string) {
			if err := unix.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: ErrNotRegular, stat: ErrNotRegular, remove: true},
		{name: "socket", plant: func(t *testing.T, p string) {
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			t.Cleanup(func() { l.Close() })
		}, want: ErrNotRegular, stat: ErrNotRegular, remove: true},
		{name: "empty file", plant: writeFile(nil), want: ErrBadMagic, stat: ErrBadMagic, remove: true},
		{name: "few bytes", plant: writeFile([]byte("RLO")), want: ErrBadMagic, stat: ErrBadMagic, remove: true},
		{name: "few other bytes", plant: writeFile([]byte("#!/bin")), want: ErrBadMagic, stat: ErrBadMagic, remove: true},
		{name: "magic only", plant: writeFile([]byte(Magic + "xyz")), want: ErrTruncated, stat: ErrTruncated},
		{name: "random bytes", plant: writeFile(random), want: ErrBadMagic, stat: ErrBadMagic, remove: true},
		{name: "text", plant: writeFile([]byte(strings.Repeat("hello\n", 100))), want: ErrBadMagic, stat: ErrBadMagic, remove: true},
		{name: "wrong magic", plant: writeFile(mod(func(b []byte) []byte { b[0] = 'X'; return b })), want: ErrBadMagic, stat: ErrBadMagic, remove: true},
		{name: "wrong version", plant: writeFile(mod(func(b []byte) []byte { return put32(b, offVersion, 2) })), want: ErrVersion, stat: ErrVersion},
		{name: "version 0", plant: writeFile(mod(func(b []byte) []byte { return put32(b, offVersion, 0) })), want: ErrVersion, stat: ErrVersion},
		{name: "wrong mutex size", plant: writeFile(mod(func(b []byte) []byte { return put16(b, offMutexSize, robustlock.Size+8) })), want: ErrABI, stat: ErrABI},
		{name: "wrong word size", plant: writeFile(mod(func(b []byte) []byte { return put16(b, offWordSize, 4) })), want: ErrABI, stat: ErrABI},
		{name: "foreign byte order", plant: writeFile(mod(func(b []byte) []byte { return put32(b, offByteOrder, 0x04030201) })), want: ErrABI, stat: ErrABI},
		{name: "data offset past the end", plant: writeFile(mod(func(b []byte) []byte { return put64(b, offDataOffset, 1<<20) })), want: ErrCorrupt, stat: ErrCorrupt},
		{name: "data offset overflowing", plant: writeFile(mod(func(b []byte) []byte { return put64(b, offDataOffset, ^uint64(0)-7) })), want: ErrCorrupt, stat: ErrCorrupt},
		{name: "mutexes past the end", plant: writeFile(mod(func(b []byte) []byte { return put64(b, offMutexOffset, 1<<30) })), want: ErrCorrupt, stat: ErrCorrupt},
		{name: "mutexes over the data", plant: writeFile(mod(func(b []byte) []byte { return put32(b, offMutexCount, 4) })), want: ErrCorrupt, stat: ErrCorrupt},
		{name: "no mutex", plant: writeFile(mod(func(b []byte) []byte { return put32(b, offMutexCount, 0) })), want: ErrCorrupt, stat: ErrCorrupt},
		{name: "misaligned mutexes", plant: writeFile(mod(func(b []byte) []byte { return put64(b, offMutexOffset, HeaderSize+4) })), want: ErrCorrupt, stat: ErrCorrupt},
		{name: "small stride", plant: writeFile(mod(func(b []byte) []byte { return put32(b, offMutexStride, 8) })), want: ErrCorrupt, stat: ErrCorrupt},
		{name: "header size", plant: writeFile(mod(func(b []byte) []byte { return put32(b, offHeaderSize, 64) })), want: ErrCorrupt, stat: ErrCorrupt},
		{name: "reserved field set", plant: writeFile(mod(func(b []byte) []byte { b[HeaderSize-1] = 1; return b })), want: ErrCorrupt, stat: ErrCorrupt},
		{name: "flags set", plant: writeFile(mod(func(b []byte) []byte { return put32(b, offFlags, 1) })), want: ErrCorrupt, stat: ErrCorrupt},
		{name: "no creator", plant: writeFile(mod(func(b []byte) []byte { return put32(b, offCreatorPID, 0) })), want: ErrCorrupt, stat: ErrCorrupt},
		{name: "data size past the end", plant: writeFile(mod(func(b []byte) []byte { return put64(b, offDataSize, size+1) })), want: ErrCorrupt, stat: ErrCorrupt},
		{name: "total size past the end", plant: writeFile(mod(func(b []byte) []byte {
			put64(b, offDataSize, size+100)
			return put64(b, offTotalSize, uint64(len(b))+100)
		})), want: ErrTruncated, stat: ErrTruncated},
		{name: "truncated", plant: writeFile(good[:len(good)/2]), want: ErrTruncated, stat: ErrTruncated},
		{name: "header cut", plant: writeFile(good[:HeaderSize-1]), want: ErrTruncated, stat: ErrTruncated},
		{name: "file longer than header says", plant: writeFile(append(bytes.Clone(good), 0)), want: ErrCorrupt, stat: ErrCorrupt},
		{name: "size mismatch", plant: writeFile(good), opts: []Option{Size(size + 1)}, want: ErrSizeMismatch},
		{name: "mutex count mismatch", plant: writeFile(good), opts: []Option{Mutexes(1)}, want: ErrSizeMismatch},
		{name: "other pid namespace", plant: writeFile(mod(func(b []byte) []byte { return put64(b, offPIDNS, pidNamespace()+1) })), want: ErrPIDNamespace},
		{name: "exists, CreateOnly", plant: writeFile(good), opts: []Option{CreateOnly(), Size(size)}, want: ErrExist},
		{name: "invalid option", plant: writeFile(good), opts: []Option{Mode(0o4777)}, want: ErrInvalidOption},
	}
	if os.Geteuid() == 0 {
		cases = append(cases, bad{name: "foreign owner", plant: func(t *testing.T, p string) {
			writeFile(good)(t, p)
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, want: ErrForeignOwner})
	} else {
		t.Log("not root: the foreign owner case needs chown and is skipped")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "seg")
			c.plant(t, path)
			before := snap(t, path)
			opts := append([]Option{Dir(dir)}, c.opts...)
			if len(c.opts) == 0 {
				opts = append(opts, Size(size), Init(fill("x"))) // may create: must not
			}
			err := within(t, 10*time.Second, func() error {
				s, err := Open("seg", opts...)
				if err == nil {
					s.Close()
				}
				return err
			})
			t.Log(err)
			if !errors.Is(err, c.want) {
				t.Errorf("Open: got %v, want %v", err, c.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Name != "seg" {
				t.Errorf("Open: %v is not an *Error naming the segment", err)
			}
			err = within(t, 10*time.Second, func() error { _, err := Stat("seg", Dir(dir)); return err })
			if c.stat == nil && err != nil || c.stat != nil && !errors.Is(err, c.stat) {
				t.Errorf("Stat: got %v, want %v", err, c.stat)
			}
			if c.remove {
				if err := within(t, 10*time.Second, func() error { return Remove("seg", Dir(dir)) }); err == nil {
					t.Errorf("Remove removed a file that is no segment")
				}
			}
			if after := snap(t, path); !before.equal(after) {
				t.Errorf("the file changed:\nbefore %+v\nafter  %+v", before, after)
			}
			if c.name == "symlink to a segment" {
				if b, _ := os.ReadFile(otherTarget); !bytes.Equal(b, good) {
					t.Errorf("the symlink's target changed")
				}
			}
			if infos, err := List(Dir(dir)); err != nil || (c.stat != nil && len(infos) != 0) {
				t.Errorf("List: %v, %v", infos, err)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Errorf("directory holds %d entries, want only the planted one", len(ents))
			}
		})
	}
}

// TestTrusted: the opt-ins that lift the owner and namespace checks work,
// and then change nothing on disk either.
func TestTrusted(t *testing.T) {
	good := validFile(t, 100, 0)
	t.Run("TrustOwner", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to chown")
		}
		dir := t.TempDir()
		p := filepath.Join(dir, "seg")
		writeFile(good)(t, p)
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		before := snap(t, p)
		s, err := Open("seg", Dir(dir), TrustOwner(1234), TrustOwner(65534))
		if err != nil {
			t.Fatal(err)
		}
		if checkPattern("v", s.Data()) >= 0 {
			t.Error("data differs")
		}
		s.Close()
		if !before.equal(snap(t, p)) {
			t.Error("the file changed")
		}
	})
	t.Run("AllowOtherPIDNamespace", func(t *testing.T) {
		dir := t.TempDir()
		b := put64(bytes.Clone(good), offPIDNS, pidNamespace()+1)
		writeFile(b)(t, filepath.Join(dir, "seg"))
		s, err := Open("seg", Dir(dir), AllowOtherPIDNamespace())
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		// An unknown namespace (0: the creator had no /proc) is not refused.
		writeFile(put64(b, offPIDNS, 0))(t, filepath.Join(dir, "seg0"))
		s, err = Open("seg0", Dir(dir))
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})
}

// TestBadNames: names outside the rules are refused by every entry point,
// and nothing is created.
func TestBadNames(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"", ".", "..", ".hidden", tmpPrefix + "1-2-3-4", "a/b", "../x", "/abs", "a b",
		"tab\t", "é", "a\x00b", "star*", "new\nline", strings.Repeat("a", MaxNameLen+1)} {
		if _, err := Open(n, Dir(dir), Size(10)); !errors.Is(err, ErrBadName) {
			t.Errorf("Open(%q): %v", n, err)
		}
		if _, err := Stat(n, Dir(dir)); !errors.Is(err, ErrBadName) {
			t.Errorf("Stat(%q): %v", n, err)
		}
		if err := Remove(n, Dir(dir)); !errors.Is(err, ErrBadName) {
			t.Errorf("Remove(%q): %v", n, err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("bad names created %d files", len(ents))
	}
	for _, n := range []string{"a", "-", "A.b_c-9", strings.Repeat("z", MaxNameLen)} {
		s, err := Open(n, Dir(dir), Size(10))
		if err != nil {
			t.Errorf("Open(%q): %v", n, err)
			continue
		}
		s.Close()
	}
}
