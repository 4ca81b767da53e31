package main

import (
	"bytes"
	"runtime/debug"
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

// TestVersionFrom: what a build from a checkout records (go build stamps
// it unless -buildvcs=false) reaches the report.
func TestVersionFrom(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "example.com/m", Version: "v1.2.3", Sum: "h1:x"},
		Settings: []debug.BuildSetting{{Key: "CGO_ENABLED", Value: "0"}, {Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-12-01T08:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	v := versionFrom(versionReport{Schema: versionSchema}, bi)
	if v.Module != "example.com/m" || v.Version != "v1.2.3" || v.Sum != "h1:x" || v.Go != "go1.26.1" || v.CGO ||
		v.VCS == nil || *v.VCS != (vcs{System: "git", Revision: "abc123", Time: "2026-12-01T08:00:00Z", Modified: true}) {
		t.Errorf("%+v, vcs %+v", v, v.VCS)
	}
}
