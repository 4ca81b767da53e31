//go:build linux

package segment_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/futexlab/robustlock/segment"
)

// A segment truncated while mapped: Check and Close report ErrFault instead
// of crashing, and Remove with Force clears the damaged file.
func ExampleSegment_Check() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	seg, err := segment.Open("jobs", segment.Dir(dir), segment.Size(1<<16))
	if err != nil {
		fmt.Println(err)
		return
	}
	os.Truncate(filepath.Join(dir, "jobs"), 0) // what `truncate -s 0` does

	fmt.Println(errors.Is(seg.Check(), segment.ErrFault))
	fmt.Println(errors.Is(seg.Close(), segment.ErrFault))
	fmt.Println(segment.Remove("jobs", segment.Dir(dir)) != nil)
	fmt.Println(segment.Remove("jobs", segment.Dir(dir), segment.Force()))
	// Output:
	// true
	// true
	// true
	// <nil>
}
