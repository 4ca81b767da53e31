//go:build linux

package main

import (
	"strings"
	"testing"
	"time"
)

// TestEtcd checks the wiring only: the etcd module owns what
// robustlock-etcd prints, and it is usually not installed here.
func TestEtcd(t *testing.T) {
	r := runBin(t, 30*time.Second, "etcd", "-h")
	if strings.Contains(r.stderr, "unknown command") {
		t.Errorf("etcd is not wired: %q", r.stderr)
	}
	if r.code != 0 && !strings.Contains(r.stderr, "robustlock-etcd is not installed") {
		t.Errorf("etcd -h without robustlock-etcd: exit %d, stderr %q", r.code, r.stderr)
	}
}
