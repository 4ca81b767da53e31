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
	return opts
}

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
