//go:build linux

package segment

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// plantSparse writes n files into dir whose headers claim MaxMutexes+1
// mutexes, as issue 11 item 7 planted them: the first page of a real such
// segment (header and the first mutexes), the rest a hole.
func plantSparse(t *testing.T, dir string, n int) Header {
	t.Helper()
	src := t.TempDir()
	seg, err := Open("big", Dir(src), Size(0), Mutexes(MaxMutexes), CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	h := seg.Header()
	if err := seg.Close(); err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(filepath.Join(src, "big"))
	if err != nil {
		t.Fatal(err)
	}
	page := full[:4096]
	for i := range n {
		p := filepath.Join(dir, "planted-"+strconv.Itoa(i))
		if err := os.WriteFile(p, page, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, h.TotalSize); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// TestWalkBounded is issue 11 item 7: Walk's work per file does not grow
// with the mutex count a sparse file's header claims. It counts the
// reads and seeks Walk makes.
func TestWalkBounded(t *testing.T) {
	dir := t.TempDir()
	const files = 100
	h := plantSparse(t, dir, files)
	before := scanReads.Load()
	n := 0
	err := Walk(func(e Entry) error {
		n++
		if e.Err != nil {
			t.Errorf("%s: %v", e.Name, e.Err)
		}
		c := e.Counts
		if c.Scanned != h.MutexCount || c.Free != h.MutexCount || e.MutexCount != h.MutexCount || e.Lock.Kind == 0 {
			t.Errorf("%s: %d mutexes, counts %+v, lock %+v; want all %d scanned and free, mutex 0 initialised",
				e.Name, e.MutexCount, c, e.Lock, h.MutexCount)
		}
		return nil
	}, Dir(dir))
	if err != nil || n != files {
		t.Fatalf("Walk: %v, %d entries, want %d", err, n, files)
	}
	// Per file: a seek finding the first page's data, its read, a seek
	// finding nothing but hole after it.
	perFile := float64(scanReads.Load()-before) / files
	t.Logf("%.1f reads and seeks per file of %d mutexes", perFile, h.MutexCount)
	if perFile > 4 {
		t.Errorf("%.1f reads and seeks per file; want at most 4, whatever the header claims", perFile)
	}
	// Stat reads every mutex, but in blocks, and skips holes too.
	before = scanReads.Load()
	info, err := Stat("planted-0", Dir(dir))
	if err != nil || len(info.Mutexes) != h.MutexCount {
		t.Fatalf("Stat: %v, %d mutexes", err, len(info.Mutexes))
	}
	if got := scanReads.Load() - before; got > 4 {
		t.Errorf("Stat: %d reads and seeks, want at most 4", got)
	}
}

// TestWalkBudget: a file full of real data, more than ScanBudget bytes of
// mutexes (a stride twice the default), is counted up to the budget only.
func TestWalkBudget(t *testing.T) {
	dir := t.TempDir()
	h := newHeader(0, MaxMutexes, os.Getpid(), 0, time.Now())
	h.MutexStride = 2 * mutexStride
	h.DataOffset = alignUp(h.MutexOffset+int64(h.MutexCount)*int64(h.MutexStride), dataAlign)
	h.TotalSize = h.DataOffset
	b := make([]byte, h.TotalSize) // written out: no holes
	h.putFields(b)
	putMagic(b)
	if err := os.WriteFile(filepath.Join(dir, "wide"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	before := scanReads.Load()
	var got []Entry
	if err := Walk(func(e Entry) error { got = append(got, e); return nil }, Dir(dir)); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Err != nil {
		t.Fatalf("Walk: %+v", got)
	}
	if c := got[0].Counts; c.Scanned != ScanBudget/h.MutexStride || c.Free != c.Scanned {
		t.Errorf("counts %+v of %d mutexes; want %d scanned (the budget), all free", c, h.MutexCount, ScanBudget/h.MutexStride)
	}
	// 64 KiB blocks, a seek before each.
	if n, max := scanReads.Load()-before, int64(2*(ScanBudget/(64<<10)+1)); n > max {
		t.Errorf("%d reads and seeks, want at most %d", n, max)
	}
}

// TestWalkDamaged is the reporting part of issue 11 item 1: a segment
// truncated (with its magic intact) is an Entry with Err, not left out and
// not a crash; Stat says ErrTruncated; a file shorter than the magic and a
// file without it are left out.
func TestWalkDamaged(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"cut", "intact", "short"} {
		seg, err := Open(n, Dir(dir), Size(4096), Mutexes(3), CreateOnly())
		if err != nil {
			t.Fatal(err)
		}
		if err := seg.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Truncate(filepath.Join(dir, "cut"), HeaderSize+10); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "short"), 4); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other"), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	var got []Entry
	if err := Walk(func(e Entry) error { got = append(got, e); return nil }, Dir(dir)); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "cut" || got[1].Name != "intact" {
		t.Fatalf("Walk gave %+v; want cut and intact", got)
	}
	var se *Error
	if err := got[0].Err; !errors.Is(err, ErrTruncated) || !errors.As(err, &se) || se.Path != filepath.Join(dir, "cut") {
		t.Errorf("cut: Err %v; want an *Error wrapping ErrTruncated", err)
	}
	if got[1].Err != nil || got[1].Counts.Scanned != 4 || got[1].Counts.Free != 4 {
		t.Errorf("intact: %+v", got[1])
	}
	if _, err := Stat("cut", Dir(dir)); !errors.Is(err, ErrTruncated) {
		t.Errorf("Stat of the truncated segment: %v", err)
	}
	// fn's error stops the walk and is returned.
	stop := errors.New("stop")
	n := 0
	if err := Walk(func(Entry) error { n++; return stop }, Dir(dir)); err != stop || n != 1 {
		t.Errorf("Walk returned %v after %d calls; want fn's error after 1", err, n)
	}
}
