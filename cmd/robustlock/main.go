// Command robustlock shows robust process-shared mutexes at work and
// inspects the shared-memory segments that hold them.
//
// Usage:
//
//	robustlock demo [-workers N] [-duration D] [-kills N] [-dir DIR] [-keep] [-v]
//	robustlock ls [-dir DIR] [--json] [DIR]
//	robustlock inspect [-dir DIR] [--json] NAME
//	robustlock rm [-dir DIR] NAME...
//	robustlock bench [flags]
//
// demo is the main job. It creates a segment in /dev/shm under a unique
// name and starts worker processes: the same binary, executed again, each
// opening the segment by name. The workers move money between accounts
// under the segment's lock, a transfer at a time, with an undo journal; the
// accounts must always add up to the same total. A chaos killer SIGKILLs
// workers at random moments, most of them while they hold the lock in the
// middle of a transfer, and starts replacements. The next worker to lock
// gets robustlock.ErrOwnerDied, rolls the half-done transfer back from the
// journal, calls MarkConsistent and goes on. Every worker checks the total
// each time it takes the lock, and the demo checks it once more at the end.
// It prints a table of operations, kills, kills while holding the lock,
// recoveries and the longest recovery time, and exits 0 only if the total
// never changed and every death while holding the lock was recovered. The
// segment is removed at the end (also on Ctrl-C) unless -keep is given.
//
// ls, inspect and rm are to this project's segments what ipcs and ipcrm
// are to System V IPC: ls lists the segments in a directory (default
// /dev/shm) with their size, creator, age and lock state; inspect shows one
// segment's header and the state of each of its mutexes (free or held, by
// which thread of which process, whether that thread is alive, waiters,
// owner died, inconsistent, not recoverable); rm removes segments. Files
// that are not segments are skipped by ls and refused by inspect and rm.
// ls and inspect print JSON with --json.
//
// bench runs the comparison suite of package bench.
//
// Exit status: 0 on success, 1 when a command fails (for demo: the
// invariant broke or a death went unrecovered), 2 for a usage error, 130
// when interrupted.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit statuses shared by every subcommand.
const (
	exitOK          = 0
	exitFail        = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// command is one subcommand: its one-line summary for the top-level usage
// and the function that runs it with the arguments after its name.
type command struct {
	name    string
	args    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands []command

func init() {
	commands = []command{
		{"demo", "[flags]", "run workers under a chaos killer and check that every death is recovered", runDemo},
		{"ls", "[flags]", "list the segments in a directory (like ipcs)", runLs},
		{"inspect", "[flags] NAME", "show a segment's header and the state of each mutex", runInspect},
		{"rm", "[flags] NAME...", "remove segments (like ipcrm)", runRm},
		{"bench", "[flags]", "compare robustlock with the other locks a program could use", runBench},
		{"etcd", "lock|inspect|reset ...", "the same lock across hosts, on etcd (runs robustlock-etcd)", runEtcd},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to the subcommand named by args[0] and returns the exit
// status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help", "help":
		if name == "help" && len(rest) > 0 {
			if c := lookup(rest[0]); c != nil {
				return c.run([]string{"-h"}, stdout, stderr)
			}
			return failf(stderr, exitUsage, "help: unknown command %q", rest[0])
		}
		usage(stdout)
		return exitOK
	}
	c := lookup(name)
	if c == nil {
		usage(stderr)
		return failf(stderr, exitUsage, "unknown command %q", name)
	}
	return c.run(rest, stdout, stderr)
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "robustlock runs and inspects robust process-shared mutexes in shared memory.\n\n")
	fmt.Fprintf(w, "Usage:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  robustlock %s %s\n", c.name, c.args)
	}
	fmt.Fprintf(w, "\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'robustlock COMMAND -h' for a command's flags.\n")
	fmt.Fprintf(w, "Start with 'robustlock demo'.\n")
}

// failf prints one error line, "robustlock: ...", and returns status.
func failf(stderr io.Writer, status int, format string, a ...any) int {
	fmt.Fprintf(stderr, "robustlock: "+format+"\n", a...)
	return status
}

// newFlagSet returns a flag set for subcommand name whose -h prints
// synopsis, then explain, then the flags, on stdout (help asked for is not
// an error).
func newFlagSet(name, synopsis, explain string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("robustlock "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by flagError, in one line
	fs.Usage = func() {
		fs.SetOutput(stdout)
		fmt.Fprintf(stdout, "Usage: robustlock %s %s\n\n%s\n", name, synopsis, strings.TrimSpace(explain))
		if hasVisibleFlags(fs) {
			fmt.Fprintf(stdout, "\nFlags:\n")
			printFlags(stdout, fs)
		}
		fs.SetOutput(io.Discard)
	}
	return fs
}

// hidden lists flags that exist for the demo's own use (worker processes,
// tests) and are left out of -h.
var hidden = map[string]bool{"worker": true, "name": true, "slot": true, "ppid": true, "corrupt": true}

func hasVisibleFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if !hidden[f.Name] {
			n++
		}
	})
	return n > 0
}

// printFlags is flag.PrintDefaults without the hidden flags.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		if hidden[f.Name] {
			return
		}
		arg, text := flag.UnquoteUsage(f)
		dash := "-"
		if f.Name == "json" {
			dash = "--"
		}
		head := "  " + dash + f.Name
		if arg != "" {
			head += " " + arg
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && !strings.Contains(text, "(default") {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "%s\n    \t%s%s\n", head, text, def)
	})
}

// parseArgs parses args with fs and returns the positional arguments.
// Flags may come before or after them ("inspect NAME --json" as well as
// "inspect --json NAME"); everything after "--" is positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err // Parse has printed the help for -h
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, tail...), nil
		}
		// Parse stopped at a positional argument: keep it, go on after it.
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// flagError turns a parse error into the exit status: 0 for -h, 2 with
// one line for anything else.
func flagError(stderr io.Writer, name string, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return failf(stderr, exitUsage, "%s: %v (see 'robustlock %s -h')", name, err, name)
}
