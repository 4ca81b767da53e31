//go:build linux

package e2e

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock/internal/proctest"
)

// TestStaticBinary builds the lock, kill and recover jobs with
// CGO_ENABLED=0, checks that they are statically linked, and runs each in
// a chroot holding nothing but the binary and /tmp ("bare": no /proc, so
// segment publishes with its named-temporary fallback and records no PID
// namespace), and again with /proc mounted in a private mount namespace
// ("proc": the O_TMPFILE+linkat path). The jobs: internal/staticjob, and
// the demo command (robustlock demo) when ./cmd/robustlock exists.
func TestStaticBinary(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for chroot and mount namespaces")
	}
	dur := "3s"
	if testing.Short() {
		dur = "1s"
	}
	jobs := []struct {
		name, pkg string
		args      []string
	}{
		{"staticjob", "./e2e/internal/staticjob", []string{"-duration", dur, "-workers", "3", "-dir", "/tmp"}},
		{"demo", "./cmd/robustlock", []string{"demo", "-duration", dur, "-workers", "3", "-dir", "/tmp"}},
	}
	for _, job := range jobs {
		t.Run(job.name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join("..", job.pkg)); err != nil {
				t.Skipf("%s is not there yet", job.pkg)
			}
			bin := buildStatic(t, job.pkg)
			checkStatic(t, bin)
			for _, variant := range []string{"bare", "proc", "proc+dev-null"} {
				t.Run(variant, func(t *testing.T) {
					if job.name == "staticjob" && variant == "proc+dev-null" {
						t.Skip("staticjob needs no /dev")
					}
					out, err := runChrooted(t, bin, variant, job.args...)
					t.Logf("%s in a %s root:\n%s", job.name, variant, out)
					if err == nil {
						if job.name == "staticjob" {
							checkStaticjobOutput(t, variant, out)
						}
						return
					}
					t.Fatalf("%s failed in a %s root: %v", job.name, variant, err)
				})
			}
		})
	}
}

var (
	staticMu   sync.Mutex
	staticBins = map[string]string{}
)

// buildStatic builds the main package pkg (a path from the module root)
// with CGO_ENABLED=0, once per test binary run, into the directory
// cProgram uses, and returns the binary.
func buildStatic(t *testing.T, pkg string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the static binaries")
	}
	staticMu.Lock()
	defer staticMu.Unlock()
	if bin, ok := staticBins[pkg]; ok {
		return bin
	}
	dir, err := os.MkdirTemp("", "robustlock-e2e-static-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	build := exec.Command(gobin, "build", "-o", bin, pkg)
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("CGO_ENABLED=0 go build %s: %v\n%s", pkg, err, out)
	}
	staticBins[pkg] = bin
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	return bin
}

// checkStatic fails unless bin has no program interpreter and needs no
// shared library.
func checkStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s has a PT_INTERP program header: dynamically linked", bin)
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Fatalf("%s has a PT_DYNAMIC program header", bin)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil && err != elf.ErrNoSymbols {
		t.Fatalf("reading DT_NEEDED of %s: %v", bin, err)
	}
	if len(libs) > 0 {
		t.Fatalf("%s needs shared libraries %v", bin, libs)
	}
}

func checkStaticjobOutput(t *testing.T, variant, out string) {
	t.Helper()
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "ok ") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no ok line")
	}
	kv := map[string]string{}
	for _, f := range strings.Fields(line)[1:] {
		k, v, _ := strings.Cut(f, "=")
		kv[k] = v
	}
	switch variant {
	case "bare":
		// No /proc: segment names its PID namespace through a pidfd where
		// the kernel can (6.11+), else records 0 (its documented
		// "unknown"); and it publishes with a named temporary that must be
		// gone.
		want := "0"
		if pidfdNamespaceWorks() {
			want = strconv.FormatUint(ownPIDNamespace(t), 10)
		}
		if kv["proc"] != "absent" || kv["pidns"] != want {
			t.Errorf("bare root: %v, want proc=absent pidns=%s", kv, want)
		}
	default:
		if kv["proc"] != "present" || kv["pidns"] == "0" {
			t.Errorf("root with /proc: %v, want proc=present and a PID namespace", kv)
		}
	}
	if kv["dir_entries_at_create"] != "1" {
		t.Errorf("the segment's directory held %s entries after Open, want 1 (no temporaries left)", kv["dir_entries_at_create"])
	}
}

// runChrooted copies bin to /job in a new root holding only /tmp (and,
// per variant, /proc mounted in a private mount namespace, and
// /dev/null), runs it there with args, and returns its output.
func runChrooted(t *testing.T, bin, variant string, args ...string) (string, error) {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(bin, filepath.Join(root, "job"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	switch variant {
	case "bare":
		cmd = exec.Command("/job", args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		cmd.Dir = "/"
	case "proc", "proc+dev-null":
		if err := os.Mkdir(filepath.Join(root, "proc"), 0o555); err != nil {
			t.Fatal(err)
		}
		if variant == "proc+dev-null" {
			if err := os.Mkdir(filepath.Join(root, "dev"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
				t.Fatal(err)
			}
		}
		// The helper, in a new mount namespace, mounts /proc in the root,
		// chroots and execs /job.
		cmd = helperCmd("enter", 2*time.Minute, append([]string{root}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	}
	cmd.Env = []string{} // nothing from this environment
	if variant != "bare" {
		cmd.Env = proctest.HelperEnv("enter", append([]string{root}, args...)...)
	}
	out := make(chan string, 1)
	var b strings.Builder
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Start(); err != nil {
		if variant != "bare" {
			t.Skipf("cannot start a process in a new mount namespace: %v", err)
		}
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); out <- b.String() }()
	select {
	case err := <-done:
		o := <-out
		if variant != "bare" {
			if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), root) {
				t.Errorf("the /proc mount inside %s leaked into this mount namespace", root)
			}
		}
		return o, err
	case <-time.After(watchdog):
		cmd.Process.Kill()
		t.Fatalf("the chrooted job did not finish within %v", watchdog)
	}
	return "", nil
}

func init() {
	// enter ROOT ARGS...: in a fresh mount namespace, keep mounts from
	// propagating back, mount proc on ROOT/proc, chroot to ROOT and exec
	// /job ARGS.
	helpers["enter"] = func(a []string) int {
		root := a[0]
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			fmt.Println("enter: making mounts private:", err)
			return 2
		}
		if err := unix.Mount("proc", filepath.Join(root, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			fmt.Println("enter: mounting proc:", err)
			return 2
		}
		if err := unix.Chroot(root); err != nil {
			fmt.Println("enter: chroot:", err)
			return 2
		}
		if err := unix.Chdir("/"); err != nil {
			fmt.Println("enter: chdir:", err)
			return 2
		}
		err := unix.Exec("/job", append([]string{"/job"}, a[1:]...), []string{})
		fmt.Println("enter: exec /job:", err)
		return 2
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ownPIDNamespace is the inode of this process's PID namespace.
func ownPIDNamespace(t *testing.T) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/pid", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
