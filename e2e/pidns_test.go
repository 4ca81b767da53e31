//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock/segment"
)

func init() {
	// pidns-open DIR NAME ALLOW: open the segment; answer "ok" or "error
	// pidns" or "error CAUSE", then "view PID SELF NS": this process's pid
	// as it sees it, where /proc/self leads, and the inode of
	// /proc/self/ns/pid.
	helpers["pidns-open"] = func(a []string) int {
		opts := []segment.Option{segment.Dir(a[0]), segment.OpenOnly()}
		if a[2] == "1" {
			opts = append(opts, segment.AllowOtherPIDNamespace())
		}
		seg, err := segment.Open(a[1], opts...)
		switch {
		case errors.Is(err, segment.ErrPIDNamespace):
			fmt.Println("error pidns")
		case err != nil:
			fmt.Println("error", err)
		default:
			fmt.Println("ok")
			seg.Close()
		}
		self, _ := os.Readlink("/proc/self")
		fmt.Println("view", os.Getpid(), self, nsIno("/proc/self/ns/pid"))
		return 0
	}
	// pidns-create DIR NAME: create the segment; answer "ok NS" with the
	// namespace its header records.
	helpers["pidns-create"] = func(a []string) int {
		seg, err := segment.Open(a[1], segment.Dir(a[0]), segment.Size(64), segment.CreateOnly())
		if err != nil {
			fmt.Println("error", err)
			return 0
		}
		fmt.Println("ok", seg.Header().PIDNamespace)
		seg.Close()
		return 0
	}
}

func nsIno(path string) uint64 {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return 0
	}
	return st.Ino
}

// runOnce runs cmd and returns its output lines, failing after the
// watchdog.
func runOnce(t *testing.T, cmd *exec.Cmd) []string {
	t.Helper()
	var b strings.Builder
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start %v: %v", cmd.Args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, b.String())
		}
	case <-time.After(watchdog):
		cmd.Process.Kill()
		t.Fatalf("%v did not finish", cmd.Args)
	}
	return strings.Split(strings.TrimSpace(b.String()), "\n")
}

// TestPIDNamespace: a process in another PID namespace than a segment's
// creator is refused it (segment.ErrPIDNamespace) unless it opts in with
// AllowOtherPIDNamespace, however the namespace was made: CLONE_NEWPID
// from Go without remounting /proc (where /proc/self still leads to the
// parent's view of the process, but /proc/self/ns/pid names the task's
// own namespace), util-linux unshare --pid --fork, with and without
// --mount-proc, and in the other direction. Without /proc at all the
// check cannot be made, as segment documents; the last subtest shows it.
func TestPIDNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for new PID namespaces")
	}
	dir := t.TempDir()
	seg, err := segment.Open("ns", segment.Dir(dir), segment.Size(64), segment.CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	myNS := nsIno("/proc/self/ns/pid")
	if h := seg.Header(); h.PIDNamespace != myNS || myNS == 0 {
		t.Fatalf("header records pid:[%d], this process is in pid:[%d]", h.PIDNamespace, myNS)
	}

	open := func(t *testing.T, how string, allow string) (string, []string) {
		var cmd *exec.Cmd
		args := []string{dir, "ns", allow}
		switch how {
		case "CLONE_NEWPID":
			cmd = helperCmd("pidns-open", time.Minute, args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
		default:
			un, err := exec.LookPath("unshare")
			if err != nil {
				t.Skip("no unshare command")
			}
			flags := strings.Fields(how)[1:]
			cmd = exec.Command(un, append(flags, os.Args[0], "-test.run=^$")...)
			cmd.Env = helperCmd("pidns-open", time.Minute, args...).Env
		}
		lines := runOnce(t, cmd)
		if len(lines) != 2 {
			t.Fatalf("helper said %q", lines)
		}
		return lines[0], strings.Fields(lines[1])
	}

	for _, how := range []string{"CLONE_NEWPID", "unshare --pid --fork", "unshare --pid --fork --mount-proc"} {
		t.Run(strings.ReplaceAll(how, " ", "_"), func(t *testing.T) {
			got, view := open(t, how, "0")
			t.Logf("in the new namespace: pid %s, /proc/self -> %s, /proc/self/ns/pid inode %s (ours %d)", view[1], view[2], view[3], myNS)
			if view[1] != "1" {
				t.Errorf("the helper is pid %s in its namespace, want 1: not a new PID namespace", view[1])
			}
			if view[3] == strconv.FormatUint(myNS, 10) || view[3] == "0" {
				t.Errorf("/proc/self/ns/pid in the new namespace reads %s, ours is %d: detection cannot work", view[3], myNS)
			}
			if got != "error pidns" {
				t.Errorf("open from another PID namespace: %q, want ErrPIDNamespace", got)
			}
			if got, _ := open(t, how, "1"); got != "ok" {
				t.Errorf("open from another PID namespace with AllowOtherPIDNamespace: %q", got)
			}
		})
	}

	t.Run("created-in-a-new-namespace", func(t *testing.T) {
		cmd := helperCmd("pidns-create", time.Minute, dir, "inner")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
		lines := runOnce(t, cmd)
		f := strings.Fields(lines[0])
		if len(f) != 2 || f[0] != "ok" || f[1] == "0" || f[1] == strconv.FormatUint(myNS, 10) {
			t.Fatalf("creator in a new PID namespace said %q: its namespace is not recorded", lines)
		}
		_, err := segment.Open("inner", segment.Dir(dir), segment.OpenOnly())
		if !errors.Is(err, segment.ErrPIDNamespace) {
			t.Fatalf("opening a segment created in a child PID namespace: %v, want ErrPIDNamespace", err)
		}
		s, err := segment.Open("inner", segment.Dir(dir), segment.OpenOnly(), segment.AllowOtherPIDNamespace())
		if err != nil {
			t.Fatalf("with AllowOtherPIDNamespace: %v", err)
		}
		s.Close()
	})

	t.Run("no-proc", func(t *testing.T) {
		// A chroot without /proc, in a new PID namespace: the static job
		// cannot read its namespace, so (as documented) it does not check.
		bin := buildStatic(t, "./e2e/internal/staticjob")
		root := t.TempDir()
		os.Chmod(root, 0o755)
		if err := copyFile(bin, filepath.Join(root, "job"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(root, "tmp"), 0o1777); err != nil {
			t.Fatal(err)
		}
		s, err := segment.Open("outer", segment.Dir(filepath.Join(root, "tmp")), segment.Size(64), segment.CreateOnly())
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		run := func(args ...string) string {
			cmd := exec.Command("/job", args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Cloneflags: syscall.CLONE_NEWPID}
			cmd.Dir, cmd.Env = "/", []string{}
			return runOnce(t, cmd)[0]
		}
		opened := run("-dir", "/tmp", "-open", "outer")
		created := run("-dir", "/tmp", "-create", "inner")
		_, err = segment.Open("inner", segment.Dir(filepath.Join(root, "tmp")), segment.OpenOnly())
		t.Logf("without /proc, in a new PID namespace: opening our segment: %q; creating one: %q; we open that: %v",
			opened, created, err)
		if pidfdNamespaceWorks() {
			// Linux 6.11+: segment asks a pidfd instead of /proc.
			if opened != "error pidns" || created == "ok 0" || created == "ok "+strconv.FormatUint(myNS, 10) ||
				!errors.Is(err, segment.ErrPIDNamespace) {
				t.Fatalf("without /proc, a process in another PID namespace was not told apart " +
					"(the pidfd namespace ioctl works on this kernel)")
			}
			return
		}
		if opened != "ok "+strconv.FormatUint(myNS, 10) || created != "ok 0" || err != nil {
			t.Fatalf("not what segment documents for a process without /proc (0 = unknown, check skipped)")
		}
		t.Logf("GAP (documented, kernels before 6.11): without /proc a process in another PID namespace gets the segment")
	})
}

// pidfdNamespaceWorks reports whether this kernel answers
// PIDFD_GET_PID_NAMESPACE (Linux 6.11 and later).
func pidfdNamespaceWorks() bool {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	ns, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), 0xff05, 0)
	if e != 0 {
		return false
	}
	unix.Close(int(ns))
	return true
}
