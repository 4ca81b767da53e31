//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// The guest has no Go toolchain, but some tests build a main package of
// this module and run the result (e2e's static-binary and PID-namespace
// tests, cmd/robustlock's TestMain). /bin/go is this binary: it serves
// exactly "go build -o OUT PKG" by copying the binary scripts/qemu-test
// built for PKG on the host (CGO_ENABLED=0, the guest's GOARCH) from
// /prebuilt/PKG, PKG taken relative to the module root /src. Anything
// else fails with a message saying so, and a test then fails or skips as
// it would without the package.
var (
	moduleRoot  = "/src"      // where scripts/qemu-test puts each package's directory
	prebuiltDir = "/prebuilt" // the commands, by their path in the module
)

func goShim(args []string) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "go (qemu guest shim): "+format+"\n", a...)
		return 2
	}
	if len(args) != 4 || args[0] != "build" || args[1] != "-o" {
		return fail("only \"go build -o OUT PKG\" of a prebuilt package is served, not %q", args)
	}
	out, pkg := args[2], args[3]
	wd, err := os.Getwd()
	if err != nil {
		return fail("%v", err)
	}
	rel, err := filepath.Rel(moduleRoot, filepath.Join(wd, pkg))
	if err != nil || strings.HasPrefix(rel, "..") {
		return fail("%s is not a package of the module at %s", pkg, moduleRoot)
	}
	src, err := os.Open(filepath.Join(prebuiltDir, rel))
	if err != nil {
		return fail("no prebuilt binary for ./%s: %v", rel, err)
	}
	defer src.Close()
	dst, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return fail("%v", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fail("%v", err)
	}
	if err := dst.Close(); err != nil {
		return fail("%v", err)
	}
	return 0
}
