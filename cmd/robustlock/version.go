package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strconv"
	"text/tabwriter"
)

// versionReport is what robustlock version prints; with --json, as is
// (schema versionSchema, documented in the package comment).
type versionReport struct {
	Schema  int    `json:"schema"`
	Module  string `json:"module"`  // the main module's path
	Version string `json:"version"` // its version: a tag, a pseudo-version, or "(devel)" for a build from a checkout
	Sum     string `json:"sum,omitempty"`
	Go      string `json:"go"` // the Go toolchain that built the binary
	GOOS    string `json:"goos"`
	GOARCH  string `json:"goarch"`
	CGO     bool   `json:"cgo_enabled"` // the build's CGO_ENABLED setting (this command links no C either way)
	VCS     *vcs   `json:"vcs,omitempty"`
}

// vcs is the version control state a build from a checkout records.
type vcs struct {
	System   string `json:"system"`         // "git"
	Revision string `json:"revision"`       // the commit
	Time     string `json:"time,omitempty"` // the commit's time, RFC 3339
	Modified bool   `json:"modified"`       // the work tree had changes
}

const versionSchema = 1

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", "[--json]", `
Print robustlock's version: the module's version as the Go build recorded
it ("(devel)" for a build from a checkout, a tag or pseudo-version for
go install ...@version), the Go toolchain, the target system, the build's
CGO_ENABLED setting, and the commit of a build from a checkout (go build
records it; go run does not).`, stdout, stderr)
	asJSON := fs.Bool("json", false, "print one JSON object")
	pos, status, ok := fs.parse(args)
	if !ok {
		return status
	}
	if len(pos) > 0 {
		return fs.usageError("unexpected argument %q", pos[0])
	}
	v := buildVersion()
	if *asJSON {
		return writeJSON(stdout, stderr, "version", v)
	}
	fmt.Fprintf(stdout, "robustlock %s\n", v.Version)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  module\t%s\n", v.Module)
	cgo := 0
	if v.CGO {
		cgo = 1
	}
	fmt.Fprintf(tw, "  go\t%s %s/%s, CGO_ENABLED=%d\n", v.Go, v.GOOS, v.GOARCH, cgo)
	if v.VCS != nil {
		rev := v.VCS.System + " " + v.VCS.Revision
		if v.VCS.Time != "" {
			rev += ", " + v.VCS.Time
		}
		if v.VCS.Modified {
			rev += ", modified"
		}
		fmt.Fprintf(tw, "  commit\t%s\n", rev)
	}
	tw.Flush()
	return exitOK
}

// buildVersion reads what the Go toolchain recorded in this binary.
func buildVersion() versionReport {
	v := versionReport{Schema: versionSchema, Module: "github.com/futexlab/robustlock", Version: "(unknown)",
		Go: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	return versionFrom(v, bi)
}

// versionFrom fills v in from bi.
func versionFrom(v versionReport, bi *debug.BuildInfo) versionReport {
	if bi.Main.Path != "" {
		v.Module = bi.Main.Path
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	v.Sum, v.Go = bi.Main.Sum, bi.GoVersion
	var c vcs
	for _, s := range bi.Settings {
		switch s.Key {
		case "CGO_ENABLED":
			v.CGO = s.Value == "1"
		case "vcs":
			c.System = s.Value
		case "vcs.revision":
			c.Revision = s.Value
		case "vcs.time":
			c.Time = s.Value
		case "vcs.modified":
			c.Modified, _ = strconv.ParseBool(s.Value)
		}
	}
	if c.System != "" {
		v.VCS = &c
	}
	return v
}
