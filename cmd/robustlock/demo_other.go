//go:build !linux

package main

import "io"

// runDemo needs robust futexes, which only Linux has.
func runDemo(args []string, stdout, stderr io.Writer) int {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			io.WriteString(stdout, "Usage: robustlock demo [flags]\n\nThe demo needs Linux: robust futexes exist only there.\n")
			return exitOK
		}
	}
	return failf(stderr, exitFail, "demo: unsupported on this system: robust process-shared mutexes need Linux")
}
