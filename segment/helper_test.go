//go:build linux

package segment

// Helper processes: the test binary run again as a helper (proctest's
// protocol), configured by SEG_* environment variables. Helpers talk to
// the test over stdin and stdout, one line per message.

import (
	"bufio"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/internal/proctest"
)

// patience is how long a test waits for one step of a helper before
// failing (generous: a loaded 2-core machine running -race).
const patience = 60 * time.Second

var helpers = map[string]proctest.Helper{
	"race":     func([]string) int { return helperRace() },
	"initkill": func([]string) int { return helperInitKill() },
	"hold":     func([]string) int { return helperHold() },
	"open":     func([]string) int { return helperOpen() },
	"damaged":  func([]string) int { return helperDamaged() },
	"memlimit": func([]string) int { return helperMemLimit() },
	"slowinit": func([]string) int { return helperSlowInit() },
}

func TestMain(m *testing.M) { os.Exit(proctest.Main(m, helpers)) }

// A child is a running helper process.
type child = proctest.Proc

// spawn starts helper with extra environment variables; the test's cleanup
// kills it if it is still running.
func spawn(t *testing.T, helper string, env ...string) *child {
	t.Helper()
	c, err := start(t, helper, nil, env...)
	if err != nil {
		t.Fatalf("starting helper %s: %v", helper, err)
	}
	t.Cleanup(c.Kill)
	return c
}

func start(t *testing.T, helper string, attr *syscall.SysProcAttr, env ...string) (*child, error) {
	cmd := proctest.Command(helper)
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = attr
	return proctest.Launch(t, helper, cmd)
}

// pattern is what the tests' Init callbacks write: never a zero byte, so
// data that was not (fully) initialised shows.
func pattern(name string, i int) byte {
	h := fnv.New32a()
	h.Write([]byte(name))
	return byte(1 + (int(h.Sum32())+i*7)%255)
}

func fill(name string) func([]byte) error {
	return func(b []byte) error {
		for i := range b {
			b[i] = pattern(name, i)
		}
		return nil
	}
}

// checkPattern returns the index of the first byte that is not name's
// pattern, or -1.
func checkPattern(name string, b []byte) int {
	for i := range b {
		if b[i] != pattern(name, i) {
			return i
		}
	}
	return -1
}

func envOpts() []Option {
	opts := []Option{Dir(os.Getenv("SEG_DIR"))}
	if os.Getenv("SEG_FALLBACK") == "1" {
		opts = append(opts, withFallback())
	}
	if os.Getenv("SEG_NOCLAIM") == "1" {
		opts = append(opts, withoutClaim())
	}
	return opts
}

// withoutClaim makes creators race without the creation claim, as they do
// where it cannot be had: the publication race itself is then tested.
func withoutClaim() Option { return func(c *config) { c.noClaim = true } }

// withFallback forces the named-temporary publication path.
func withFallback() Option { return func(c *config) { c.fallbackOnly = true } }

// helperRace opens the name read from each line of stdin (creating it with
// a patterned Init that dawdles a little, so that creators overlap) and
// answers "created ok creatorPID createdNanos initRan".
func helperRace() int {
	size, _ := strconv.Atoi(os.Getenv("SEG_SIZE"))
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		name := sc.Text()
		initRan := false
		opts := append(envOpts(), Size(size), Init(func(b []byte) error {
			initRan = true
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
			return fill(name)(b)
		}))
		s, err := Open(name, opts...)
		if err != nil {
			fmt.Printf("error %v\n", err)
			continue
		}
		bad := checkPattern(name, s.Data())
		h := s.Header()
		fmt.Printf("%t %t %d %d %t\n", s.Created(), bad < 0, h.CreatorPID, h.Created.UnixNano(), initRan)
		if err := s.Close(); err != nil {
			fmt.Printf("error %v\n", err)
		}
	}
	return 0
}

// helperInitKill opens SEG_NAME once, with an Init that announces itself
// ("init") and then fills the data slowly, chunk by chunk, so that the
// test can kill it in the middle. It answers "ok CREATED" if the data it
// sees is complete, "bad INDEX" if not.
func helperInitKill() int {
	name := os.Getenv("SEG_NAME")
	opts := append(envOpts(), Size(initKillSize), Init(func(b []byte) error {
		fmt.Println("init")
		const chunks = 16
		n := len(b) / chunks
		for i := 0; i < chunks; i++ {
			for j := i * n; j < (i+1)*n; j++ {
				b[j] = pattern(name, j)
			}
			time.Sleep(100 * time.Microsecond)
		}
		return nil
	}))
	s, err := Open(name, opts...)
	if err != nil {
		fmt.Printf("error %v\n", err)
		return 1
	}
	if i := checkPattern(name, s.Data()); i >= 0 {
		fmt.Printf("bad %d\n", i)
		return 1
	}
	fmt.Printf("ok %t\n", s.Created())
	return 0
}

const initKillSize = 64 << 10

// helperHold opens SEG_NAME, locks mutex SEG_MUTEX, says "locked TID" and
// holds it until it reads a line, then unlocks and says "unlocked".
func helperHold() int {
	name := os.Getenv("SEG_NAME")
	i, _ := strconv.Atoi(os.Getenv("SEG_MUTEX"))
	s, err := Open(name, append(envOpts(), OpenOnly())...)
	if err != nil {
		fmt.Printf("error %v\n", err)
		return 1
	}
	m, err := s.MutexN(i)
	if err != nil {
		fmt.Printf("error %v\n", err)
		return 1
	}
	if err := m.Lock(); err != nil && !errors.Is(err, robustlock.ErrOwnerDied) {
		fmt.Printf("error %v\n", err)
		return 1
	}
	fmt.Printf("locked %d\n", m.State().Owner)
	bufio.NewReader(os.Stdin).ReadString('\n')
	if err := m.Unlock(); err != nil {
		fmt.Printf("error %v\n", err)
		return 1
	}
	fmt.Println("unlocked")
	return 0
}

// helperOpen opens SEG_NAME (with AllowOtherPIDNamespace if SEG_ALLOW is
// set) and answers "ok PID" or "error CAUSE" where CAUSE names the
// sentinel.
func helperOpen() int {
	opts := append(envOpts(), OpenOnly())
	if os.Getenv("SEG_ALLOW") != "" {
		opts = append(opts, AllowOtherPIDNamespace())
	}
	s, err := Open(os.Getenv("SEG_NAME"), opts...)
	switch {
	case err == nil:
		fmt.Printf("ok %d\n", os.Getpid())
		s.Close()
	case errors.Is(err, ErrPIDNamespace):
		fmt.Println("error pidns")
	default:
		fmt.Printf("error %v\n", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	return 0
}

func deadlineIn() time.Time { return time.Now().Add(patience) }

// helperDamaged opens SEG_NAME, locks and unlocks its mutex, says
// "open", and at each line it then reads runs one step on the segment,
// which the test damages in between: "check" answers Check's cause,
// "close" Close's, then "maps clean" or "maps FILE" (whether the file is
// still mapped).
func helperDamaged() int {
	s, err := Open(os.Getenv("SEG_NAME"), append(envOpts(), OpenOnly())...)
	if err != nil {
		fmt.Printf("error %v\n", err)
		return 1
	}
	if err := s.Mutex().Lock(); err != nil {
		fmt.Printf("error %v\n", err)
		return 1
	}
	s.Mutex().Unlock()
	fmt.Println("open")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "check":
			fmt.Println("check", cause(s.Check()))
		case "close":
			fmt.Println("close", cause(s.Close()))
			maps, _ := os.ReadFile("/proc/self/maps")
			if strings.Contains(string(maps), s.Path()) {
				fmt.Println("maps still maps", s.Path())
			} else {
				fmt.Println("maps clean")
			}
		}
	}
	return 0
}

// cause names err's sentinel, for helpers' answers.
func cause(err error) string {
	for _, c := range []struct {
		name string
		err  error
	}{{"fault", ErrFault}, {"badmagic", ErrBadMagic}, {"inuse", ErrInUse}, {"closed", ErrClosed},
		{"memlimit", ErrMemoryLimit}, {"permission", ErrPermission}, {"foreign", ErrForeignOwner}} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	if err == nil {
		return "nil"
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// helperMemLimit waits for a line (the test moves it into a memory cgroup
// meanwhile), then creates SEG_NAME with SEG_SIZE bytes, touching every
// page in Init, and answers "created" or "error CAUSE".
func helperMemLimit() int {
	bufio.NewReader(os.Stdin).ReadString('\n')
	size, _ := strconv.Atoi(os.Getenv("SEG_SIZE"))
	s, err := Open(os.Getenv("SEG_NAME"), append(envOpts(), Size(size), Init(func(b []byte) error {
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		return nil
	}))...)
	if err != nil {
		fmt.Println("error", cause(err))
		return 0
	}
	fmt.Println("created")
	s.Close()
	return 0
}

// helperSlowInit creates SEG_NAME with an Init that says "init" and then
// waits for a line before it fills the data; then it says "created".
func helperSlowInit() int {
	name := os.Getenv("SEG_NAME")
	in := bufio.NewReader(os.Stdin)
	s, err := Open(name, append(envOpts(), Size(4096), Init(func(b []byte) error {
		fmt.Println("init")
		in.ReadString('\n')
		return fill(name)(b)
	}))...)
	if err != nil {
		fmt.Printf("error %v\n", err)
		return 1
	}
	fmt.Println("created")
	in.ReadString('\n')
	s.Close()
	return 0
}
