package proctest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The helper-process protocol, the one every package's tests use. A test
// binary is run again (Command) with Env naming a helper, its arguments in
// argsEnv and an optional lifetime in lifeEnv; its TestMain, which is
// always
//
//	func TestMain(m *testing.M) { os.Exit(proctest.Main(m, helpers)) }
//
// then runs that helper instead of the tests.
const (
	// Env names the helper a test binary is to run as; unset in a test run.
	Env     = "ROBUSTLOCK_TEST_HELPER"
	argsEnv = "ROBUSTLOCK_TEST_HELPER_ARGS" // arguments, separated by argSep
	lifeEnv = "ROBUSTLOCK_TEST_HELPER_LIFE" // a time.Duration; default Life
	argSep  = "\x1f"                        // ASCII unit separator: arguments may hold spaces
)

// Life bounds a helper process unless SetLife says otherwise: one whose
// test went away exits on its own instead of lingering (a parent-death
// signal would fire when the spawning thread, not the test, exits).
const Life = 3 * time.Minute

// A Helper is the body of a helper process: it gets the arguments given to
// Command and returns the process's exit status.
type Helper func(args []string) int

// Main is the body of every TestMain. In a helper process (Env set) it runs
// the named helper under a Life watchdog and exits with its status (3 for
// an unknown helper, 4 when the lifetime expires); otherwise it runs the
// tests and returns m.Run's status for TestMain to clean up and exit with.
func Main(m *testing.M, helpers map[string]Helper) int {
	Serve(helpers)
	return m.Run()
}

// Serve runs the named helper and exits, in a helper process, and returns
// at once otherwise: for a TestMain that has work of its own around m.Run
// (Main is Serve then m.Run).
func Serve(helpers map[string]Helper) {
	name, ok := os.LookupEnv(Env)
	if !ok {
		return
	}
	h := helpers[name]
	if h == nil {
		fmt.Fprintf(os.Stderr, "proctest: unknown helper %q\n", name)
		os.Exit(3)
	}
	life := Life
	if d, err := time.ParseDuration(os.Getenv(lifeEnv)); err == nil {
		life = d
	}
	if life > 0 {
		time.AfterFunc(life, func() {
			fmt.Fprintf(os.Stderr, "proctest: helper %s: lifetime %v expired\n", name, life)
			os.Exit(4)
		})
	}
	var args []string
	if a := os.Getenv(argsEnv); a != "" {
		args = strings.Split(a, argSep)
	}
	os.Exit(h(args))
}

// Command returns the command that runs this test binary again as helper
// with args, running no tests. Its Env is the test's environment plus the
// helper's; append "NAME=value" entries to cmd.Env for more.
func Command(helper string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), HelperEnv(helper, args...)...)
	return cmd
}

// HelperEnv returns the environment entries ("NAME=value") that make a
// run of this test binary (with -test.run=^$) the helper with args, for a
// caller that builds the command or its environment itself.
func HelperEnv(helper string, args ...string) []string {
	return []string{Env + "=" + helper, argsEnv + "=" + strings.Join(args, argSep)}
}

// SetLife sets how long the helper cmd runs may live (Life by default);
// 0 means for ever, with no watchdog timer in the helper.
func SetLife(cmd *exec.Cmd, life time.Duration) {
	cmd.Env = append(cmd.Env, lifeEnv+"="+life.String())
}
