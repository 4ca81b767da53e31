//go:build linux

package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestGoShim: "go build -o OUT PKG" hands out the prebuilt binary of PKG,
// PKG relative to the working directory as the go tool takes it; any other
// command, or a package with no prebuilt binary, fails and writes nothing.
func TestGoShim(t *testing.T) {
	dir := t.TempDir()
	moduleRoot, prebuiltDir = filepath.Join(dir, "src"), filepath.Join(dir, "prebuilt")
	for _, d := range []string{"src/cmd/robustlock", "src/e2e", "prebuilt/cmd"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(prebuiltDir, "cmd/robustlock"), []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		wd   string
		args []string
		ok   bool
	}{
		{"src/cmd/robustlock", []string{"build", "-o", out, "."}, true},
		{"src", []string{"build", "-o", out, "./cmd/robustlock"}, true},
		{"src/e2e", []string{"build", "-o", out, "../cmd/robustlock"}, true},
		{"src", []string{"build", "-o", out, "./e2e/internal/staticjob"}, false}, // not prebuilt
		{"src", []string{"build", "-race", "-o", out, "./cmd/robustlock"}, false},
		{"src", []string{"test", "./..."}, false},
		{"src", []string{"build", "-o", out, "../prebuilt/cmd/robustlock"}, false}, // outside the module
	} {
		os.Remove(out)
		t.Chdir(filepath.Join(dir, tc.wd))
		code := goShim(tc.args)
		b, err := os.ReadFile(out)
		switch {
		case tc.ok && (code != 0 || string(b) != "binary"):
			t.Errorf("in %s, go %q: exit %d, output %q, %v", tc.wd, tc.args, code, b, err)
		case !tc.ok && (code == 0 || err == nil):
			t.Errorf("in %s, go %q: exit %d, output %q; want a failure and no output", tc.wd, tc.args, code, b)
		case tc.ok:
			if fi, err := os.Stat(out); err != nil || fi.Mode().Perm()&0o100 == 0 {
				t.Errorf("in %s, go %q: output not executable: %v %v", tc.wd, tc.args, fi.Mode(), err)
			}
		}
	}
}
