package main

import "io"

// runEtcd runs robustlock-etcd, the command of the etcd module: the same
// robust-lock contract across hosts, on an etcd cluster. It lives in its
// own module (etcd's client is large), so this binary never links it.
func runEtcd(args []string, stdout, stderr io.Writer) int {
	return runCompanion("etcd", "robustlock-etcd", "etcd", args, stdout, stderr)
}
