//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/futexlab/robustlock/segment"
)

// plant writes n sparse files into dir whose headers claim the most
// mutexes a segment can have (issue 11 item 7): the first page of a real
// such segment, its first held mutexes each held by the dead thread tid,
// and a hole to the size the header claims. It returns the header and how
// many mutexes the page holds.
func plant(t *testing.T, dir string, n, held, tid int) segment.Header {
	t.Helper()
	src := t.TempDir()
	seg, err := segment.Open("big", segment.Dir(src), segment.Size(0), segment.Mutexes(segment.MaxMutexes), segment.CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	h := seg.Header()
	seg.Close()
	full, err := os.ReadFile(filepath.Join(src, "big"))
	if err != nil {
		t.Fatal(err)
	}
	page := full[:4096]
	for i := range held {
		binary.NativeEndian.PutUint32(page[h.MutexOff(i):], uint32(tid)) // the lock word
	}
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

// TestLsPlanted is issue 11 item 7: ls on 100 planted sparse files whose
// headers claim 65537 mutexes. It checks, by counting, that /proc is read
// per thread and not per mutex (ls: mutex 0's holder; inspect: each
// distinct holder once), and that ls allocates a bounded number of bytes
// (6.5 GB before).
func TestLsPlanted(t *testing.T) {
	dir := t.TempDir()
	const files, held = 100, 40
	tid := deadTID(t)
	h := plant(t, dir, files, held, tid)

	before := procLookups.Load()
	var out, errs bytes.Buffer
	out.Grow(1 << 20)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	if code := runLs([]string{"-dir", dir, "--json"}, &out, &errs); code != 0 {
		t.Fatalf("ls --json: exit %d: %s", code, errs.String())
	}
	runtime.ReadMemStats(&m1)
	const maxAlloc = 8 << 20
	alloc := m1.TotalAlloc - m0.TotalAlloc
	t.Logf("ls --json of %d files: %d bytes of output, %d bytes allocated", files, out.Len(), alloc)
	if alloc > maxAlloc {
		t.Errorf("ls --json of %d files of %d mutexes allocated %d bytes; want at most %d", files, h.MutexCount, alloc, maxAlloc)
	}
	if n := procLookups.Load() - before; n > 2 {
		t.Errorf("ls --json of %d files of %d mutexes looked %d ids up in /proc; want at most 2 (the creator and the holder, once each)",
			files, h.MutexCount, n)
	}
	var got []segmentReport
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("ls --json: %v", err)
	}
	if len(got) != files {
		t.Fatalf("ls --json listed %d segments, want %d", len(got), files)
	}
	for _, r := range got {
		c := r.Counts
		if r.Schema != reportSchema || r.MutexCount != h.MutexCount || len(r.Mutexes) != 1 || r.Mutexes[0].State != "held" ||
			c.Scanned != h.MutexCount || c.Held != held || c.Free != h.MutexCount-held {
			t.Fatalf("%s: schema %d, %d mutexes, %d shown, counts %+v", r.Name, r.Schema, r.MutexCount, len(r.Mutexes), c)
		}
	}

	before = procLookups.Load()
	out.Reset()
	if code := runInspect([]string{"-dir", dir, "--json", "planted-0"}, &out, &errs); code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, errs.String())
	}
	var one segmentReport
	if err := json.Unmarshal(out.Bytes(), &one); err != nil || len(one.Mutexes) != h.MutexCount {
		t.Fatalf("inspect --json: %v, %d mutexes", err, len(one.Mutexes))
	}
	if n := procLookups.Load() - before; n > 2 {
		t.Errorf("inspect of %d mutexes, %d held by one thread, looked %d ids up; want at most 2", h.MutexCount, held, n)
	}

	// Text: a section per held mutex, one line for the free ones after.
	out.Reset()
	if code := runInspect([]string{"-dir", dir, "planted-0"}, &out, &errs); code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, errs.String())
	}
	idle := " to " + strconv.Itoa(h.MutexCount-1) + ": free, no waiters" // the hole
	if lines := strings.Count(out.String(), "\n"); lines > 20+10*held || !strings.Contains(out.String(), idle) {
		t.Errorf("inspect printed %d lines; want about 10 per held mutex and %q", lines, idle)
	}

	text := runBin(t, 60*time.Second, "ls", "-dir", dir)
	if text.code != 0 || strings.Count(text.stdout, "(+39 other mutexes not free)") != files {
		t.Errorf("ls: exit %d\n%s%s", text.code, text.stdout, text.stderr)
	}
}

// TestLsDamaged is the reporting part of issue 11 item 1: a truncated
// segment is listed as damaged, in text and JSON, and inspect says so,
// without crashing; rm removes it.
func TestLsDamaged(t *testing.T) {
	dir := t.TempDir()
	create(t, dir, "cut")
	create(t, dir, "fine")
	if err := os.Truncate(filepath.Join(dir, "cut"), segment.HeaderSize+8); err != nil {
		t.Fatal(err)
	}
	r := runBin(t, 10*time.Second, "ls", "-dir", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "DAMAGED: file is truncated") || !strings.Contains(r.stdout, "fine") {
		t.Errorf("ls: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runBin(t, 10*time.Second, "ls", "-dir", dir, "--json")
	var got []segmentReport
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 2 {
		t.Fatalf("ls --json: %v\n%s", err, r.stdout)
	}
	if got[0].Name != "cut" || !strings.Contains(got[0].Error, "truncated") || got[1].Error != "" {
		t.Errorf("ls --json: %+v", got)
	}
	r = runBin(t, 10*time.Second, "inspect", "-dir", dir, "cut")
	if r.code != exitFail || !strings.Contains(r.stderr, "is a damaged robustlock segment (file is truncated") {
		t.Errorf("inspect: exit %d, %q", r.code, r.stderr)
	}
	if r := runBin(t, 10*time.Second, "rm", "-dir", dir, "cut"); r.code != 0 {
		t.Errorf("rm: exit %d, %q", r.code, r.stderr)
	}
}
