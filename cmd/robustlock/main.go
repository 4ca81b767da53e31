// Command robustlock shows robust process-shared mutexes at work and
// inspects the shared-memory segments that hold them.
//
// Usage:
//
//	robustlock demo [-workers N] [-duration D] [-kills N] [-dir DIR] [-keep] [-v]
//	robustlock ls [-dir DIR] [--json] [DIR]
//	robustlock inspect [-dir DIR] [--json] NAME
//	robustlock rm [-dir DIR] [-force] NAME...
//	robustlock reset [-dir DIR] [-force] NAME
//	robustlock recover [-dir DIR] NAME
//	robustlock pub [-dir DIR] NAME MSG
//	robustlock sub [-dir DIR] [-n N] [--json] NAME
//	robustlock req [-dir DIR] [-timeout S] NAME MSG
//	robustlock serve [-dir DIR] [-n N] NAME [-- CMD ARGS...]
//	robustlock bench [flags]
//	robustlock etcd lock|inspect|reset ...
//	robustlock version [--json]
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
// segment is removed at the end (also on Ctrl-C, SIGTERM or SIGHUP, which
// kill the workers first) unless -keep is given.
//
// ls, inspect and rm are to this project's segments what ipcs and ipcrm
// are to System V IPC: ls lists the segments in a directory (default
// /dev/shm) with their size, creator, age and lock state, reading a
// bounded amount of each file and reporting damaged (truncated, corrupt)
// segments as such; inspect shows one segment's header and the state of
// each of its mutexes (free or held, by which thread of which process,
// whether that thread is alive, waiters, owner died, inconsistent, not
// recoverable); rm removes segments. Files that are not segments are
// skipped by ls and refused by inspect and rm. reset re-initialises a
// segment's not-recoverable mutexes, refusing while another process maps
// the segment (as far as /proc shows: see reset -h) unless -force.
//
// bench runs robustlock-bench, the comparison suite of the bench module,
// when it is installed beside this command or on PATH. version prints the
// module version, Go version, platform and commit this binary was built
// from.
//
// Every subcommand answers -h with its help on stdout (exit 0), and a
// usage error with two lines on stderr, what is wrong and the usage line
// (exit 2).
//
// Exit status: 0 on success, 1 when a command fails (for demo: the
// invariant broke or a death went unrecovered), 2 for a usage error, 130
// when interrupted.
//
// # JSON output
//
// ls --json prints an array of segment objects, inspect --json one, and
// version --json a version object. Every object has a "schema" number,
// now 1: a field is never removed, renamed or given another meaning
// without a new number, and fields may be added within one. Times are RFC
// 3339, sizes and offsets bytes.
//
// A segment object (schema 1):
//
//	schema              1
//	name, path          the segment's name and file
//	uid, user           the file's owner (user: from /etc/passwd, omitted if none)
//	mode                its permission bits, "0600"
//	error               only for a damaged segment: why it cannot be read;
//	                    the header fields below are then zero
//	size                total bytes (the header's)
//	version             header layout version
//	word_size, mutex_size, header_size
//	                    the creating ABI's pointer size and mutex size, the header's size
//	mutex_count         mutexes, the segment's own lock (mutex 0) included
//	mutex_stride, mutex_offset, data_offset, data_size
//	                    the layout
//	creator             the creating process, a task (below)
//	created, age_seconds
//	                    when it was created, and how long ago
//	pid_namespace       inode of the creator's PID namespace (0: unknown)
//	same_pid_namespace  whether it is this process's; null when unknown
//	mutexes             mutex objects: every mutex for inspect, mutex 0
//	                    only for ls (empty for a damaged segment)
//	counts              how many mutexes are in each state: scanned (how
//	                    many were read; ls reads at most segment.ScanBudget
//	                    bytes of them), free, held, owner_died,
//	                    not_recoverable (these four add up to scanned),
//	                    inconsistent and waiters (across those)
//
// A mutex object:
//
//	index               0 is the segment's lock
//	state               "free", "held", "recovering" (held, MarkConsistent
//	                    not yet called), "owner-died" or "not-recoverable"
//	summary             the state in words
//	owner               the thread in the lock word, a task; absent when free
//	previous_owner      owner died: the thread that died holding it
//	waiters, owner_died, inconsistent, not_recoverable
//	                    the lock word's and glibc's flags
//	kind, users         glibc's __kind and __nusers
//	other_namespace     the TIDs are another PID namespace's (not looked up)
//
// A task (a thread or process id, as /proc sees it):
//
//	id                  the id
//	known               /proc could be asked (false: another PID namespace, no /proc)
//	alive               the id exists and has not exited
//	zombie              exited, not yet reaped
//	pid, process        the process it belongs to and that process's name
//
// A version object (schema 1): module, version (a tag, a pseudo-version or
// "(devel)"), sum, go, goos, goarch, cgo_enabled, and vcs (system,
// revision, time, modified) for a build from a checkout.
package main

import (
	"fmt"
	"io"
	"os"
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
		{"reset", "[flags] NAME", "re-initialise a segment's not-recoverable mutexes", runReset},
		{"recover", "[flags] NAME", "mark mutexes held by vanished threads owner-died", runRecover},
		{"bench", "[flags]", "compare robustlock with the other locks a program could use", runBench},
		{"pub", "[flags] NAME MSG", "publish a message on an event channel", runPub},
		{"sub", "[flags] NAME", "print the messages published on an event channel", runSub},
		{"req", "[flags] NAME MSG", "send a request on an event channel and print the response", runReq},
		{"serve", "[flags] NAME [-- CMD...]", "answer an event channel's requests (echo, or run CMD)", runServe},
		{"etcd", "lock|inspect|reset ...", "the same lock across hosts, on etcd (runs robustlock-etcd)", runEtcd},
		{"version", "[--json]", "print the version of robustlock and of the Go that built it", runVersion},
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
			failf(stderr, exitUsage, "help: unknown command %q", rest[0])
			usage(stderr)
			return exitUsage
		}
		usage(stdout)
		return exitOK
	case "-version", "--version":
		name = "version"
	}
	c := lookup(name)
	if c == nil {
		failf(stderr, exitUsage, "unknown command %q", name)
		usage(stderr)
		return exitUsage
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
