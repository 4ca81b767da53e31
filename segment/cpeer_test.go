//go:build linux

package segment

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/futexlab/robustlock"
)

// cPeer is a C program written from doc.go's description and the shipped
// robustlock_segment.h alone: it shm_opens a segment, checks its header
// with the header's robustlock_segment_check, and uses its mutexes with
// pthread_mutex_lock.
const cPeer = `
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "robustlock_segment.h"

static int fail(const char *what) { printf("fail %s\n", what); return 1; }

int main(int argc, char **argv) {
	int fd = shm_open(argv[1], O_RDWR, 0);
	if (fd < 0) return fail("shm_open");
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(struct robustlock_segment)) return fail("fstat");
	char *base = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) return fail("mmap");
	struct robustlock_segment *h = (void *)base;
	if (robustlock_segment_check(h, st.st_size) || h->mutex_count < 2)
		return fail("header");
	pthread_mutex_t *lock = robustlock_segment_mutex(h, 0);
	pthread_mutex_t *extra = robustlock_segment_mutex(h, 1);
	char *data = robustlock_segment_data(h);
	if (!strcmp(argv[2], "trylock")) {
		printf("%s\n", pthread_mutex_trylock(extra) == EBUSY ? "busy" : "not busy");
		return 0;
	}
	if (!strcmp(argv[2], "write")) {
		if (pthread_mutex_lock(extra)) return fail("lock");
		snprintf(data, h->data_size, "hello from C, pid %d", (int)getpid());
		if (pthread_mutex_unlock(extra)) return fail("unlock");
		printf("ok\n");
		return 0;
	}
	if (!strcmp(argv[2], "die")) {
		if (pthread_mutex_lock(lock)) return fail("lock");
		printf("locked\n");
		fflush(stdout);
		raise(SIGKILL);
	}
	if (!strcmp(argv[2], "recover")) {
		int r = pthread_mutex_lock(lock);
		if (r != EOWNERDEAD) return fail("expected EOWNERDEAD");
		if (pthread_mutex_consistent(lock) || pthread_mutex_unlock(lock)) return fail("consistent");
		printf("recovered\n");
		return 0;
	}
	return fail("mode");
}
`

// TestCPeer: a C program using glibc's pthread_mutex_* on a segment in
// /dev/shm, found with shm_open, is a full peer: it locks, waits, writes,
// dies holding the lock (Go recovers), and recovers from a Go holder's
// death. Skipped where there is no C compiler or /dev/shm.
func TestCPeer(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler")
	}
	if fi, err := os.Stat(DefaultDir); err != nil || !fi.IsDir() {
		t.Skip("no " + DefaultDir)
	}
	bin := filepath.Join(t.TempDir(), "peer")
	src := bin + ".c"
	if err := os.WriteFile(src, []byte(cPeer), 0o600); err != nil {
		t.Fatal(err)
	}
	here, err := os.Getwd() // the package directory, which holds robustlock_segment.h
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-std=gnu11", "-O1", "-Wall", "-Werror", "-pthread", "-I", here, "-o", bin, src, "-lrt").CombinedOutput(); err != nil {
		t.Skipf("cannot build the C peer: %v\n%s", err, out)
	}
	name := fmt.Sprintf("robustlock-test-%d", os.Getpid())
	s, err := Open(name, Size(100), Mutexes(1), CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(name)
	defer s.Close()
	run := func(mode string) string {
		t.Helper()
		out, err := exec.Command(bin, "/"+name, mode).Output()
		if err != nil && !strings.Contains(err.Error(), "killed") {
			t.Fatalf("C peer %s: %v\n%s", mode, err, out)
		}
		return strings.TrimSpace(string(out))
	}

	extra, _ := s.MutexN(1)
	if err := extra.Lock(); err != nil {
		t.Fatal(err)
	}
	if got := run("trylock"); got != "busy" {
		t.Errorf("C trylock on a lock Go holds: %q", got)
	}
	if err := extra.Unlock(); err != nil {
		t.Fatal(err)
	}
	if got := run("write"); got != "ok" {
		t.Fatalf("C write: %q", got)
	}
	if d := string(s.Data()); !strings.HasPrefix(d, "hello from C") {
		t.Errorf("data after the C write: %q", d)
	}
	if got := run("die"); got != "locked" {
		t.Fatalf("C die: %q", got)
	}
	if err := s.Mutex().Lock(); !errors.Is(err, robustlock.ErrOwnerDied) {
		t.Fatalf("Go Lock after the C holder died: %v", err)
	}
	if err := s.Mutex().MarkConsistent(); err != nil {
		t.Fatal(err)
	}
	if err := s.Mutex().Unlock(); err != nil {
		t.Fatal(err)
	}

	// A Go holder dies; C recovers.
	k := spawn(t, "hold", "SEG_DIR="+DefaultDir, "SEG_NAME="+name, "SEG_MUTEX=0")
	if l := k.NextBefore(deadlineIn()); !strings.HasPrefix(l, "locked") {
		t.Fatalf("helper: %q", l)
	}
	k.Kill()
	if got := run("recover"); got != "recovered" {
		t.Errorf("C after the Go holder died: %q", got)
	}
	if st := s.Mutex().State(); st.Owner != 0 || st.OwnerDied || st.Inconsistent {
		t.Errorf("state after the C recovery: %v", st)
	}
}

// TestCHeader: robustlock_segment.h, the header C peers include, says what
// this package writes: every offset, the size, magic, version and byte
// order mark.
func TestCHeader(t *testing.T) {
	b, err := os.ReadFile("robustlock_segment.h")
	if err != nil {
		t.Fatal(err)
	}
	h := string(b)
	want := map[string]int{
		"version": offVersion, "word_size": offWordSize, "mutex_size": offMutexSize,
		"byte_order": offByteOrder, "header_size": offHeaderSize, "mutex_count": offMutexCount,
		"mutex_stride": offMutexStride, "mutex_offset": offMutexOffset, "data_offset": offDataOffset,
		"data_size": offDataSize, "total_size": offTotalSize, "creator_pid": offCreatorPID,
		"flags": offFlags, "created_ns": offCreated, "pidns_ino": offPIDNS, "reserved": offReserved,
	}
	for field, off := range want {
		s := fmt.Sprintf("ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, %s) == %d, ", field, off)
		if !strings.Contains(h, s) {
			t.Errorf("the header does not assert %s at offset %d", field, off)
		}
	}
	for _, s := range []string{
		fmt.Sprintf("ROBUSTLOCK_STATIC_ASSERT(sizeof(struct robustlock_segment) == %d, ", HeaderSize),
		fmt.Sprintf("#define ROBUSTLOCK_SEGMENT_MAGIC      %q", Magic),
		fmt.Sprintf("#define ROBUSTLOCK_SEGMENT_VERSION    %d\n", Version),
		fmt.Sprintf("#define ROBUSTLOCK_SEGMENT_BYTE_ORDER %#08xu\n", byteOrder),
	} {
		if !strings.Contains(h, s) {
			t.Errorf("the header lacks %q", s)
		}
	}
}
