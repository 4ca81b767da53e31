//go:build linux

package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/segment"
)

// Fuzz targets for everything a hostile or careless peer controls: the
// bytes of a file at a segment's name, the name, and the options. They
// go through the public API only (segment's own FuzzParseHeader covers
// the parser from inside). Seeds: the f.Add calls, made fresh each run,
// and testdata/fuzz/Fuzz*.

// segmentFile makes a real segment and returns its bytes.
func segmentFile(t testing.TB, size, mutexes int) []byte {
	dir, err := os.MkdirTemp("", "robustlock-e2e-seed-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := segment.Open("s", segment.Dir(dir), segment.Size(size), segment.Mutexes(mutexes))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, err := os.ReadFile(filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzSegmentFile: whatever bytes sit at a segment's name, Stat, Open and
// Remove return typed errors or a consistent segment, never panic, and a
// failed Open leaves the file as it was. A segment that opens has its
// regions inside the file, in order, and its mutexes answer TryLock with
// a documented result whatever their bytes.
func FuzzSegmentFile(f *testing.F) {
	valid := segmentFile(f, 64, 2)
	f.Add(valid)
	f.Add(segmentFile(f, 0, 0))
	f.Add(valid[:segment.HeaderSize])
	f.Add(append(bytes.Clone(valid), 0))
	// Mutex 1's word says its owner died; mutex 2's that tid 1 holds it;
	// mutex 0 is of a kind robustlock does not run (recursive).
	held := bytes.Clone(valid)
	off, stride := binary.NativeEndian.Uint64(held[32:]), uint64(binary.NativeEndian.Uint32(held[28:]))
	binary.NativeEndian.PutUint32(held[off+stride:], 0x40000000)
	binary.NativeEndian.PutUint32(held[off+2*stride:], 1)
	binary.NativeEndian.PutUint32(held[off+16:], 145)
	f.Add(held)
	f.Add([]byte(segment.Magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		before := takeSnapshot(t, path)
		var se *segment.Error
		info, serr := segment.Stat("f", segment.Dir(dir))
		if serr != nil && !errors.As(serr, &se) {
			t.Fatalf("Stat: untyped error %v", serr)
		}
		s, err := segment.Open("f", segment.Dir(dir), segment.OpenOnly())
		if err != nil {
			if !errors.As(err, &se) {
				t.Fatalf("Open: untyped error %v", err)
			}
			if d := before.diff(takeSnapshot(t, path)); d != "" {
				t.Fatalf("a failed Open changed the file: %s", d)
			}
		} else {
			hd := s.Header()
			n := int64(len(b))
			switch {
			case serr != nil:
				t.Fatalf("Open accepted what Stat refused (%v)", serr)
			case info.Header != hd:
				t.Fatalf("Stat and Open disagree:\n%+v\n%+v", info.Header, hd)
			case hd.TotalSize != n, hd.DataOffset+hd.DataSize != n, int64(len(s.Data())) != hd.DataSize,
				s.NumMutexes() != hd.MutexCount, hd.MutexCount < 1,
				hd.MutexOff(hd.MutexCount-1)+int64(robustlock.Size) > hd.DataOffset, hd.MutexOffset < segment.HeaderSize:
				t.Fatalf("Open accepted an inconsistent segment: %+v for %d bytes", hd, n)
			}
			if d := before.diff(takeSnapshot(t, path)); d != "" {
				t.Fatalf("Open changed the file: %s", d)
			}
			for i := 0; i < s.NumMutexes(); i++ {
				m, err := s.MutexN(i)
				if err != nil {
					t.Fatal(err)
				}
				_ = m.State().String()
				// TryLock, never Lock: a word may name a live thread.
				switch err := m.TryLock(); {
				case err == nil, errors.Is(err, robustlock.ErrOwnerDied):
					want := error(nil)
					if err != nil { // not marked consistent: unlocking says it is now not recoverable
						want = robustlock.ErrUnlockedInconsistent
					}
					if err := m.Unlock(); err != want {
						t.Fatalf("mutex %d: Unlock after TryLock: %v, want %v", i, err, want)
					}
				case errors.Is(err, robustlock.ErrBusy), errors.Is(err, robustlock.ErrKind),
					errors.Is(err, robustlock.ErrNotRecoverable), errors.Is(err, robustlock.ErrDeadlock):
				default:
					t.Fatalf("mutex %d: TryLock: %v", i, err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
		err = segment.Remove("f", segment.Dir(dir))
		_, lerr := os.Lstat(path)
		switch {
		case err == nil && lerr == nil:
			t.Fatal("Remove said yes but the file is still there")
		case err == nil && !bytes.HasPrefix(b, []byte(segment.Magic)):
			t.Fatal("Remove removed a file without the segment magic")
		case err != nil && lerr != nil:
			t.Fatalf("Remove failed (%v) but the file is gone", err)
		}
	})
}

// validName is the rule segment documents: 1 to MaxNameLen bytes of ASCII
// letters, digits, '.', '_' and '-', not starting with a dot.
func validName(name string) bool {
	if len(name) == 0 || len(name) > segment.MaxNameLen || name[0] == '.' {
		return false
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// FuzzName: a name is accepted exactly when the documented rule says so;
// an accepted name creates one file, in the directory, under that very
// name; a refused one creates nothing anywhere (no escape with "..", "/"
// or NUL).
func FuzzName(f *testing.F) {
	for _, s := range []string{"jobs", "a", ".hidden", "..", "../escape", "a/b", "a\x00b", "x.y_z-0",
		"-leading-dash", string(make([]byte, 201)), "caf\u00e9", " ", "a b", "/abs"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		outer := t.TempDir()
		dir := filepath.Join(outer, "in")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		s, err := segment.Open(name, segment.Dir(dir), segment.Size(8), segment.CreateOnly())
		ok := validName(name)
		switch {
		case ok && err != nil:
			t.Fatalf("Open(%q) refused a valid name: %v", name, err)
		case !ok && err == nil:
			s.Close()
			t.Fatalf("Open(%q) accepted an invalid name", name)
		case !ok && !errors.Is(err, segment.ErrBadName):
			t.Fatalf("Open(%q): %v, want ErrBadName", name, err)
		}
		if ok {
			s.Close()
			if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
				t.Fatalf("Open(%q) succeeded but the file is not there: %v", name, err)
			}
			if _, err := segment.Stat(name, segment.Dir(dir)); err != nil {
				t.Fatalf("Stat(%q): %v", name, err)
			}
			if l, err := segment.List(segment.Dir(dir)); err != nil || len(l) != 1 || l[0].Name != name {
				t.Fatalf("List after creating %q: %v, %v", name, l, err)
			}
			if err := segment.Remove(name, segment.Dir(dir)); err != nil {
				t.Fatalf("Remove(%q): %v", name, err)
			}
		} else {
			if _, err := segment.Stat(name, segment.Dir(dir)); !errors.Is(err, segment.ErrBadName) {
				t.Fatalf("Stat(%q): %v, want ErrBadName", name, err)
			}
			if err := segment.Remove(name, segment.Dir(dir)); !errors.Is(err, segment.ErrBadName) {
				t.Fatalf("Remove(%q): %v, want ErrBadName", name, err)
			}
		}
		for _, d := range []string{outer, dir} {
			ents, _ := os.ReadDir(d)
			want := map[string]int{outer: 1, dir: 0}[d]
			if len(ents) != want {
				t.Fatalf("after %q: %s holds %d entries, want %d", name, d, len(ents), want)
			}
		}
	})
}

// FuzzOptions: any combination of options is either refused with
// ErrInvalidOption (or ErrNotExist when nothing may be created) without
// creating anything, or creates exactly what was asked: data size, number
// of mutexes (each free, robust), mode less the umask; and reopening
// checks sizes as documented.
func FuzzOptions(f *testing.F) {
	f.Add(int64(64), int32(0), uint32(0o600), uint8(1), int32(0))
	f.Add(int64(0), int32(3), uint32(0o640), uint8(1|2|4|8), int32(1000))
	f.Add(int64(-1), int32(0), uint32(0), uint8(1), int32(0))
	f.Add(int64(segment.MaxSize)+1, int32(0), uint32(0), uint8(1), int32(0))
	f.Add(int64(64), int32(-1), uint32(0), uint8(1|2), int32(0))
	f.Add(int64(64), int32(segment.MaxMutexes+1), uint32(0), uint8(1|2), int32(0))
	f.Add(int64(64), int32(0), uint32(0o4755), uint8(1|4), int32(0))
	f.Add(int64(64), int32(0), uint32(0), uint8(8|16|1), int32(0))
	f.Add(int64(64), int32(0), uint32(0), uint8(8), int32(0))
	f.Add(int64(64), int32(0), uint32(0), uint8(1|32), int32(-5))
	f.Add(int64(64), int32(0), uint32(0), uint8(1|128), int32(0))
	umask := syscall.Umask(0)
	syscall.Umask(umask)
	f.Fuzz(func(t *testing.T, size int64, mutexes int32, mode uint32, flags uint8, trust int32) {
		// In-range sizes are folded small: the point is the checks, not
		// filling the disk.
		if size >= 0 && size <= segment.MaxSize {
			size %= 1 << 20
		}
		if mutexes >= 0 && mutexes <= segment.MaxMutexes {
			mutexes %= 300
		}
		dir := t.TempDir()
		var opts []segment.Option
		bad := false
		sizeSet, mutexesSet, modeSet := flags&1 != 0, flags&2 != 0, flags&4 != 0
		createOnly, openOnly := flags&8 != 0, flags&16 != 0
		if sizeSet {
			opts = append(opts, segment.Size(int(size)))
			bad = bad || size < 0 || size > segment.MaxSize
		}
		if mutexesSet {
			opts = append(opts, segment.Mutexes(int(mutexes)))
			bad = bad || mutexes < 0 || mutexes > segment.MaxMutexes
		}
		if modeSet {
			opts = append(opts, segment.Mode(fs.FileMode(mode)))
			bad = bad || fs.FileMode(mode)&^0o777 != 0
		}
		if createOnly {
			opts = append(opts, segment.CreateOnly())
		}
		if openOnly {
			opts = append(opts, segment.OpenOnly())
		}
		bad = bad || createOnly && openOnly || createOnly && !sizeSet
		if flags&32 != 0 {
			opts = append(opts, segment.TrustOwner(int(trust)))
			bad = bad || trust < 0
		}
		if flags&64 != 0 {
			opts = append(opts, segment.AllowOtherPIDNamespace())
		}
		if flags&128 != 0 {
			opts = append(opts, segment.Dir(""))
			bad = true
		} else {
			opts = append(opts, segment.Dir(dir))
		}
		opts = append(opts, nil) // a nil Option is ignored
		s, err := segment.Open("o", opts...)
		empty := func() {
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("a refused Open left %d entries behind", len(ents))
			}
		}
		switch {
		case bad:
			if !errors.Is(err, segment.ErrInvalidOption) {
				t.Fatalf("invalid options: %v, want ErrInvalidOption", err)
			}
			empty()
			return
		case !sizeSet || openOnly:
			if !errors.Is(err, segment.ErrNotExist) {
				t.Fatalf("nothing to create: %v, want ErrNotExist", err)
			}
			empty()
			return
		case err != nil:
			t.Fatalf("valid options refused: %v", err)
		}
		defer s.Close()
		wantMutexes := 1
		if mutexesSet {
			wantMutexes += int(mutexes)
		}
		wantMode := fs.FileMode(0o600)
		if modeSet {
			wantMode = fs.FileMode(mode)
		}
		wantMode &^= fs.FileMode(umask)
		fi, err := os.Stat(filepath.Join(dir, "o"))
		switch {
		case err != nil:
			t.Fatal(err)
		case !s.Created() || int64(len(s.Data())) != size || s.NumMutexes() != wantMutexes:
			t.Fatalf("created %v: %d data bytes, %d mutexes; want %d, %d", s.Created(), len(s.Data()), s.NumMutexes(), size, wantMutexes)
		case fi.Mode().Perm() != wantMode:
			t.Fatalf("mode %v, want %v", fi.Mode().Perm(), wantMode)
		}
		for i := 0; i < s.NumMutexes(); i++ {
			m, _ := s.MutexN(i)
			if st := m.State(); st.Owner != 0 || st.Kind != robustlock.KindRobustNormal || st.Users != 0 {
				t.Fatalf("new mutex %d: %+v", i, st)
			}
		}
		if os.Geteuid() != 0 && wantMode&0o600 != 0o600 {
			return // the owner cannot open it again without read and write permission
		}
		again, err := segment.Open("o", segment.Dir(dir), segment.Size(int(size)), segment.Mode(wantMode))
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		again.Close()
		if _, err := segment.Open("o", segment.Dir(dir), segment.Size(int(size)+1), segment.Mode(wantMode)); !errors.Is(err, segment.ErrSizeMismatch) {
			t.Fatalf("reopen with another size: %v, want ErrSizeMismatch", err)
		}
		if _, err := segment.Open("o", segment.Dir(dir), segment.Mutexes(wantMutexes), segment.Mode(wantMode)); !errors.Is(err, segment.ErrSizeMismatch) {
			t.Fatalf("reopen with another number of mutexes: %v, want ErrSizeMismatch", err)
		}
		if _, err := segment.Open("o", segment.Dir(dir), segment.Size(int(size)), segment.CreateOnly()); !errors.Is(err, segment.ErrExist) {
			t.Fatalf("CreateOnly on an existing segment: %v, want ErrExist", err)
		}
	})
}
