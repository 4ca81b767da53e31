// Command qemuinit is PID 1 of the test guests that scripts/qemu-test
// boots under qemu: it mounts what the tests need (proc, devtmpfs, tmpfs at
// /dev/shm and /tmp, sysfs), runs every test binary named in /tests/plan,
// prints one marker line per binary, and powers the machine off.
//
// It is built static (CGO_ENABLED=0) for the guest's architecture and sits
// at /init in an initramfs next to the test binaries, a static busybox in
// /bin (for /bin/true, unshare and the like), each package's testdata, and
// the module's main packages prebuilt in /prebuilt. Run as /bin/go it is a
// stand-in for "go build" of those (see goshim_linux.go).
//
// /tests/plan has one line per test binary: the package's import path, its
// directory (the binary runs there, so testdata/ resolves as under go
// test) and the binary, separated by tabs. /tests/flags, if present, has
// one extra test flag per line (-test.run=..., -test.short); /tests/env
// one KEY=VALUE per line for every test's environment.
//
// What it prints, one line each, for scripts/qemu-test to parse:
//
//	=== QEMU-GUEST kernel=RELEASE arch=MACHINE cpus=N
//	=== QEMU-START import/path
//	    ... the binary's -test.v output ...
//	=== QEMU-PASS import/path 12.3s
//	=== QEMU-FAIL import/path 12.3s exit status 1
//	=== QEMU-DONE 5 passed, 0 failed
//
// A guest that never prints QEMU-DONE (a hang, a panic of init) has failed.
package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// binaryTimeout bounds one test binary: go test's own -test.timeout is set
// a little below it, so a hang prints its goroutines before init kills it,
// and both are well inside scripts/qemu-test's limit for the whole guest.
const binaryTimeout = 12 * time.Minute

func main() {
	if filepath.Base(os.Args[0]) == "go" {
		os.Exit(goShim(os.Args[1:]))
	}
	if filepath.Base(os.Args[0]) != "init" && os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "qemuinit: this is the init of a test guest; scripts/qemu-test runs it")
		os.Exit(2)
	}
	code := run()
	unix.Sync()
	if os.Getpid() == 1 {
		// PID 1 must not exit (the kernel panics); power off instead.
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
			fmt.Println("qemuinit: power off:", err)
		}
		for {
			time.Sleep(time.Hour)
		}
	}
	os.Exit(code)
}

func run() int {
	if err := setup(); err != nil {
		fmt.Println("=== QEMU-DONE 0 passed, 1 failed")
		fmt.Println("qemuinit: setup:", err)
		return 1
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Printf("=== QEMU-GUEST kernel=%s arch=%s cpus=%d\n",
		unix.ByteSliceToString(uts.Release[:]), unix.ByteSliceToString(uts.Machine[:]), runtime.NumCPU())

	plan, err := readLines("/tests/plan")
	if err != nil {
		fmt.Println("qemuinit:", err)
		fmt.Println("=== QEMU-DONE 0 passed, 1 failed")
		return 1
	}
	flags, _ := readLines("/tests/flags")
	env, _ := readLines("/tests/env")
	// ROBUSTLOCK_EMULATED tells the few tests whose races widen with a slow
	// machine (their files say which) that they run under emulation.
	env = append([]string{"PATH=/bin:/sbin", "HOME=/root", "TMPDIR=/tmp", "USER=root", "LANG=C", "ROBUSTLOCK_EMULATED=1"}, env...)

	passed, failed := 0, 0
	for _, line := range plan {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			fmt.Printf("qemuinit: bad plan line %q\n", line)
			failed++
			continue
		}
		if runBinary(f[0], f[1], f[2], flags, env) {
			passed++
		} else {
			failed++
		}
	}
	fmt.Printf("=== QEMU-DONE %d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

// runBinary runs one test binary in its package directory and reports
// whether it passed.
func runBinary(pkg, dir, bin string, flags, env []string) bool {
	fmt.Printf("=== QEMU-START %s\n", pkg)
	ctx, cancel := context.WithTimeout(context.Background(), binaryTimeout)
	defer cancel()
	args := append([]string{"-test.v", "-test.timeout=" + (binaryTimeout - time.Minute).String()}, flags...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	// Its own process group, so init can end whatever it left behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start).Round(100 * time.Millisecond)
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("killed after %v: %v", binaryTimeout, err)
		}
		fmt.Printf("\n=== QEMU-FAIL %s %v %v\n", pkg, took, err)
		return false
	}
	fmt.Printf("\n=== QEMU-PASS %s %v\n", pkg, took)
	return true
}

// setup mounts the file systems the tests use, makes /dev/console the
// standard streams, reaps orphans (init inherits every process whose
// parent died) and installs busybox's commands.
func setup() error {
	mounts := []struct{ fstype, dir, data string }{
		{"devtmpfs", "/dev", "mode=0755"},
		{"proc", "/proc", ""},
		{"sysfs", "/sys", ""},
		{"tmpfs", "/dev/shm", "mode=1777"},
		{"tmpfs", "/tmp", "mode=1777"},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.fstype, m.dir, m.fstype, unix.MS_NOSUID, m.data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dir, err)
		}
	}
	// The kernel opened /dev/console for init only if the initramfs has
	// that node; this one is built without root, so it may not.
	if fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
		for i := 1; i <= 2; i++ {
			unix.Dup3(fd, i, 0)
		}
		unix.Close(fd)
	}
	if fd, err := unix.Open("/dev/null", unix.O_RDONLY, 0); err == nil {
		unix.Dup3(fd, 0, 0)
		unix.Close(fd)
	}
	os.MkdirAll("/root", 0o700)
	if _, err := os.Stat("/bin/busybox"); err == nil {
		if out, err := exec.Command("/bin/busybox", "--install", "-s", "/bin").CombinedOutput(); err != nil {
			return fmt.Errorf("busybox --install: %v %s", err, out)
		}
	}
	go reap()
	return nil
}

// reap waits for orphans. Only processes whose parent is gone are init's
// children besides the test binaries, so it must not steal the binaries'
// exit status from exec.Cmd.Wait: it waits only for processes that are not
// in the current binary's process group, by polling /proc.
func reap() {
	for range time.Tick(time.Second) {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			// pid (comm) state ppid pgrp ...
			i := bytes.LastIndexByte(b, ')')
			if i < 0 {
				continue
			}
			f := strings.Fields(string(b[i+1:]))
			if len(f) < 3 || f[1] != "1" || f[0] != "Z" {
				continue
			}
			var pid, pgrp int
			fmt.Sscan(e.Name(), &pid)
			fmt.Sscan(f[2], &pgrp)
			if pgrp != pid { // a test binary leads its own group: leave it to Wait
				var ws unix.WaitStatus
				unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			}
		}
	}
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if l := strings.TrimSpace(s.Text()); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, s.Text())
		}
	}
	return lines, s.Err()
}
