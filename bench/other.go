//go:build !linux

package bench

import (
	"fmt"
	"io"
	"runtime"
)

func runWorker(spec string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "bench worker: unsupported on", runtime.GOOS)
	return 2
}

func runSuite(opt *options, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "robustlock: bench: robust process-shared locks need Linux; this is %s/%s\n",
		runtime.GOOS, runtime.GOARCH)
	return 1
}

func numCPU() int { return runtime.NumCPU() }
