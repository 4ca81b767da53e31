//go:build !linux

package main

import "io"

func eventUnsupported(name string, args []string, stdout, stderr io.Writer) int {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			io.WriteString(stdout, "Usage: robustlock "+name+" [flags] NAME ...\n\nEvent channels need Linux.\n")
			return exitOK
		}
	}
	return failf(stderr, exitFail, "%s: unsupported on this system: event channels need Linux", name)
}

func runPub(args []string, stdout, stderr io.Writer) int {
	return eventUnsupported("pub", args, stdout, stderr)
}
func runSub(args []string, stdout, stderr io.Writer) int {
	return eventUnsupported("sub", args, stdout, stderr)
}
func runReq(args []string, stdout, stderr io.Writer) int {
	return eventUnsupported("req", args, stdout, stderr)
}
func runServe(args []string, stdout, stderr io.Writer) int {
	return eventUnsupported("serve", args, stdout, stderr)
}

// inspectChannel has no channels to show off Linux.
func inspectChannel(name, dir string) (any, string) { return nil, "" }
