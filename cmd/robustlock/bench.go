package main

import (
	"io"

	"github.com/futexlab/robustlock/bench"
)

// runBench hands the arguments after "bench" to package bench, which owns
// the comparison suite, its flags and its help, and returns its status.
func runBench(args []string, stdout, stderr io.Writer) int {
	return bench.Main(args, stdout, stderr)
}
