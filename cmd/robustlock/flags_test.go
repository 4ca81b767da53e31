package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestFlagSetStyle: a subcommand written with newFlagSet, parseArgs and
// flagError answers -h and usage errors as every other one does.
func TestFlagSetStyle(t *testing.T) {
	var stdout, stderr bytes.Buffer
	fs := newFlagSet("style-test", "[-x N] NAME", "Explains.", &stdout, &stderr)
	fs.Int("x", 0, "a `N`")
	_, err := parseArgs(fs, []string{"NAME", "-h"})
	if code := flagError(&stderr, "style-test", err); code != exitOK ||
		!strings.HasPrefix(stdout.String(), "Usage: robustlock style-test [-x N] NAME\n\nExplains.\n\nFlags:\n  -x N\n") || stderr.Len() != 0 {
		t.Errorf("-h: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	_, err = parseArgs(fs, []string{"-x", "y"})
	want := "robustlock: style-test: invalid value \"y\" for flag -x: parse error\n" +
		"usage: robustlock style-test [-x N] NAME (see 'robustlock style-test -h')\n"
	if code := flagError(&stderr, "style-test", err); code != exitUsage || stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("-x y: exit %d, stdout %q, stderr %q; want %q", code, stdout.String(), stderr.String(), want)
	}
}
