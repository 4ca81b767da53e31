package bench

import (
	"fmt"
	"io"
)

// Main runs the comparison suite as the `robustlock bench` command does,
// with its command-line arguments (after "bench"), and returns the exit
// status. Worker processes it starts re-execute the same binary.
func Main(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "robustlock bench: not implemented yet")
	return 2
}
