// Command quickstart is the README's quick start. Every process that runs
// it, related or not, adds one to a counter in a shared segment under a
// robust lock; a process killed mid-update is repaired by the next one.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/futexlab/robustlock/segment"
)

// The data is a counter written twice, first at [0:8] then its copy at
// [8:16]. A holder that died between the two writes left them different:
// repair rolls its unfinished update back to the copy.
func repair(data []byte) error {
	copy(data[0:8], data[8:16])
	return nil
}

func run(dir string) (err error) {
	// Created (zero-filled) by the first process to open the name,
	// atomically; opened by every other.
	seg, err := segment.Open("quickstart", segment.Dir(dir), segment.Size(16),
		segment.Repair(repair))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, seg.Close()) }()

	var n uint64
	// Do locks, runs repair first if the previous holder died, unlocks.
	err = seg.Do(context.Background(), func(data []byte) error {
		n = binary.LittleEndian.Uint64(data[0:8]) + 1
		binary.LittleEndian.PutUint64(data[0:8], n)
		binary.LittleEndian.PutUint64(data[8:16], n)
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Printf("count %d (this process created the segment: %v)\n", n, seg.Created())
	return nil
}

func main() {
	dir := flag.String("dir", segment.DefaultDir, "directory of the segment")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}
