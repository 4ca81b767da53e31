package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// benchCommand is the comparison suite's own command. It lives in the bench
// module (cgo, chart libraries), so this static, pure-Go binary never links
// it; runBench executes it instead.
const benchCommand = "robustlock-bench"

// runBench runs robustlock-bench with the arguments after "bench": the copy
// beside this executable if there is one, else the first on PATH. Without
// one it says how to get it and returns exitFail.
func runBench(args []string, stdout, stderr io.Writer) int {
	path := ""
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), benchCommand); isExecutable(p) {
			path = p
		}
	}
	if path == "" {
		p, err := exec.LookPath(benchCommand)
		if err != nil {
			return failf(stderr, exitFail, "bench: %s is not installed; run the suite from the bench module:\n"+
				"\tcd bench && go run ./cmd/%s %s\n"+
				"or install it: go install github.com/futexlab/robustlock/bench/cmd/%s@latest",
				benchCommand, benchCommand, shellJoin(args), benchCommand)
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
		return failf(stderr, exitFail, "bench: %v", err)
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
