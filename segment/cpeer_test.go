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

// cPeer is a C program written from doc.go's description alone: it
// shm_opens a segment, checks its header with the documented struct, and
// uses its mutexes with pthread_mutex_lock.
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

struct robustlock_segment {
	char     magic[8];
	uint32_t version;
	uint16_t word_size;
	uint16_t mutex_size;
	uint32_t byte_order;
	uint32_t header_size;
	uint32_t mutex_count;
	uint32_t mutex_stride;
	uint64_t mutex_offset;
	uint64_t data_offset;
	uint64_t data_size;
	uint64_t total_size;
	int32_t  creator_pid;
	uint32_t flags;
	int64_t  created_ns;
	uint64_t pidns_ino;
	uint8_t  reserved[40];
};
_Static_assert(sizeof(struct robustlock_segment) == 128, "size");
_Static_assert(offsetof(struct robustlock_segment, creator_pid) == 64, "creator_pid");
_Static_assert(offsetof(struct robustlock_segment, pidns_ino) == 80, "pidns_ino");

static int fail(const char *what) { printf("fail %s\n", what); return 1; }

int main(int argc, char **argv) {
	int fd = shm_open(argv[1], O_RDWR, 0);
	if (fd < 0) return fail("shm_open");
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(struct robustlock_segment)) return fail("fstat");
	char *base = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) return fail("mmap");
	struct robustlock_segment *h = (void *)base;
	if (memcmp(h->magic, "RLOCKSEG", 8) || h->version != 1 || h->word_size != sizeof(void *) ||
	    h->mutex_size != sizeof(pthread_mutex_t) || h->byte_order != 0x01020304 ||
	    h->header_size != sizeof *h || h->total_size != (uint64_t)st.st_size ||
	    h->mutex_offset < sizeof *h || h->mutex_count < 2 || h->mutex_stride < sizeof(pthread_mutex_t) ||
	    h->mutex_offset + (uint64_t)h->mutex_count * h->mutex_stride > h->data_offset ||
	    h->data_offset + h->data_size != h->total_size)
		return fail("header");
	pthread_mutex_t *lock = (void *)(base + h->mutex_offset);
	pthread_mutex_t *extra = (void *)(base + h->mutex_offset + h->mutex_stride);
	char *data = base + h->data_offset;
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
	if out, err := exec.Command(cc, "-O1", "-pthread", "-o", bin, src, "-lrt").CombinedOutput(); err != nil {
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
