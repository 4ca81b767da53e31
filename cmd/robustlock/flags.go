package main

// One usage and error style for every subcommand:
//
//   - -h, -help and --help print the synopsis, a paragraph and the flags on
//     stdout and exit 0 (help asked for is not an error);
//   - a usage error (an unknown flag, a bad value, a missing or extra
//     argument) prints one line "robustlock: CMD: WHAT", then the line
//     "usage: robustlock CMD SYNOPSIS (see 'robustlock CMD -h')", on stderr,
//     and exits 2;
//   - any other failure prints "robustlock: CMD [NAME]: WHAT" and exits 1.
//
// Flags may come before or after the positional arguments, and --json is
// spelt with two dashes in help (Go's flag package takes one or two).

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
)

// flags is one subcommand's flag set with its name and synopsis, for help
// and for usage errors.
type flags struct {
	*flag.FlagSet
	name, synopsis string
	explain        string
	stdout, stderr io.Writer
}

// newFlags returns the flag set of subcommand name, whose help is
// synopsis, then explain, then the flags.
func newFlags(name, synopsis, explain string, stdout, stderr io.Writer) *flags {
	f := &flags{FlagSet: flag.NewFlagSet("robustlock "+name, flag.ContinueOnError),
		name: name, synopsis: synopsis, stdout: stdout, stderr: stderr}
	f.explain = strings.TrimSpace(explain)
	registeredMu.Lock()
	registered[name] = f
	registeredMu.Unlock()
	// The flag package calls Usage on -h and on errors alike: parse
	// prints the help for the first and usageError the usage line for the
	// others.
	f.SetOutput(io.Discard)
	f.Usage = func() {}
	return f
}

// registered holds each subcommand's flags by name, for flagError; the
// tests run subcommands on several goroutines at once.
var (
	registeredMu sync.Mutex
	registered   = map[string]*flags{}
)

// newFlagSet is newFlags returning the bare flag set, for a subcommand
// written as "pos, err := parseArgs(fs, args); if err != nil { return
// flagError(stderr, name, err) }": the same help and usage errors.
//
//lint:ignore U1000 the subcommands of the event and etcd work are written this way
func newFlagSet(name, synopsis, explain string, stdout, stderr io.Writer) *flag.FlagSet {
	return newFlags(name, synopsis, explain, stdout, stderr).FlagSet
}

// flagError turns parseArgs's error for subcommand name (made by
// newFlagSet) into the exit status: the help and 0 for -h, a usage error
// and 2 otherwise.
//
//lint:ignore U1000 the subcommands of the event and etcd work are written this way
func flagError(stderr io.Writer, name string, err error) int {
	registeredMu.Lock()
	f := registered[name]
	registeredMu.Unlock()
	if f == nil {
		return failf(stderr, exitUsage, "%s: %v", name, err)
	}
	if errors.Is(err, flag.ErrHelp) {
		f.help()
		return exitOK
	}
	return f.usageError("%v", err)
}

// help prints the command's help on stdout.
func (f *flags) help() {
	fmt.Fprintf(f.stdout, "Usage: robustlock %s %s\n\n%s\n", f.name, f.synopsis, f.explain)
	if hasVisibleFlags(f.FlagSet) {
		fmt.Fprintf(f.stdout, "\nFlags:\n")
		printFlags(f.stdout, f.FlagSet)
	}
}

// parse parses args and returns the positional arguments. When it returns
// ok false, the command is over and status is its exit status: 0 after
// -h, 2 after a usage error (reported).
func (f *flags) parse(args []string) (pos []string, status int, ok bool) {
	pos, err := parseArgs(f.FlagSet, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		f.help()
		return nil, exitOK, false
	case err != nil:
		return nil, f.usageError("%v", err), false
	}
	return pos, exitOK, true
}

// usageError reports a usage error in the style above and returns
// exitUsage.
func (f *flags) usageError(format string, a ...any) int {
	return usageError(f.stderr, f.name, f.synopsis, format, a...)
}

func usageError(stderr io.Writer, name, synopsis, format string, a ...any) int {
	fmt.Fprintf(stderr, "robustlock: %s: %s\n", name, fmt.Sprintf(format, a...))
	fmt.Fprintf(stderr, "usage: robustlock %s %s (see 'robustlock %s -h')\n", name, synopsis, name)
	return exitUsage
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
			return nil, err
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
