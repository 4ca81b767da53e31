package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// runBench runs the comparison suite's own command, robustlock-bench. It
// lives in the bench module (cgo, chart libraries), so this static, pure-Go
// binary never links it.
func runBench(args []string, stdout, stderr io.Writer) int {
	return runCompanion("bench", "robustlock-bench", "bench", args, stdout, stderr)
}

// runCompanion runs the command name of the nested module dir (a module of
// its own so that its dependencies never reach this binary or the library)
// with args: the copy beside this executable if there is one, else the first
// on PATH. Without one it says how to get it and returns exitFail. sub is
// the subcommand of robustlock that stands for it, for messages.
func runCompanion(sub, name, dir string, args []string, stdout, stderr io.Writer) int {
	path := ""
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), name); isExecutable(p) {
			path = p
		}
	}
	if path == "" {
		p, err := exec.LookPath(name)
		if err != nil && wantsHelp(args) {
			fmt.Fprintf(stdout, "Usage: robustlock %s [flags]\n\n"+
				"Runs %s, the command of the %s module, which is not installed here.\n"+
				"Its help: cd %s && go run ./cmd/%s -h\n"+
				"To install it: go install github.com/futexlab/robustlock/%s/cmd/%s@latest\n",
				sub, name, dir, dir, name, dir, name)
			return exitOK
		}
		if err != nil {
			return failf(stderr, exitFail, "%s: %s is not installed; run it from its module:\n"+
				"\tcd %s && go run ./cmd/%s %s\n"+
				"or install it: go install github.com/futexlab/robustlock/%s/cmd/%s@latest",
				sub, name, dir, name, shellJoin(args), dir, name)
		}
		path = p
	}
	cmd := exec.Command(path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() >= 0 {
			return exit.ExitCode()
		}
		return failf(stderr, exitFail, "%s: %v", sub, err)
	}
	return exitOK
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// shellJoin quotes args for a command line shown to a person.
func shellJoin(args []string) string {
	s := ""
	for i, a := range args {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%q", a)
	}
	return s
}

// wantsHelp reports whether args ask for help, as the flag package reads
// them (before any "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}
