// Command robustlock-bench runs the comparison suite of package bench:
// robustlock beside glibc's robust pthread mutex (cgo), flock, OFD locks,
// System V semaphores and sync.Mutex, in one run on one machine.
//
//	cd bench && go run ./cmd/robustlock-bench [flags]
//
// It lives in the bench module, not in the library's, so that the cgo
// contenders and the chart libraries never reach a program that only uses
// robustlock. `robustlock bench` runs this command when it is installed.
package main

import (
	"os"

	"github.com/futexlab/robustlock/bench"
)

func main() {
	os.Exit(bench.Main(os.Args[1:], os.Stdout, os.Stderr))
}
