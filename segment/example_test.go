//go:build linux

package segment_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/segment"
)

// Every process runs the same code: the first Open of a name creates the
// segment (running Init before anyone can see it), the others open it.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "example") // real programs use the default, /dev/shm
	defer os.RemoveAll(dir)

	for i := 0; i < 2; i++ { // two openers, as two processes would be
		seg, err := segment.Open("jobs", segment.Dir(dir), segment.Size(64),
			segment.Init(func(data []byte) error { copy(data, "ready"); return nil }))
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("created %v, data %q\n", seg.Created(), seg.Data()[:5])
		if err := seg.Close(); err != nil {
			fmt.Println(err)
		}
	}
	// Output:
	// created true, data "ready"
	// created false, data "ready"
}

// A holder that dies mid-update, here a goroutine that exits holding the
// lock (its thread ends, as a killed process's would), is recovered by the
// next Do: it runs the Repair option, marks the lock consistent, then the
// critical section.
func ExampleSegment_Do() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	// The data: a counter and its copy; an update writes both.
	repair := func(d []byte) error {
		copy(d[8:16], d[0:8]) // the first word is written first: trust it
		fmt.Println("repaired")
		return nil
	}
	seg, err := segment.Open("counter", segment.Dir(dir), segment.Size(16), segment.Repair(repair))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer seg.Close()
	incr := func(d []byte) error {
		n := binary.LittleEndian.Uint64(d) + 1
		binary.LittleEndian.PutUint64(d[0:8], n)
		binary.LittleEndian.PutUint64(d[8:16], n)
		return nil
	}

	died := make(chan error)
	go func() {
		err := seg.Mutex().Lock()
		binary.LittleEndian.PutUint64(seg.Data(), 1) // half an update...
		died <- err                                  // ...then the goroutine exits holding the lock
	}()
	<-died

	for i := 0; i < 2; i++ {
		if err := seg.Do(context.Background(), incr); err != nil {
			fmt.Println(err)
			return
		}
	}
	d := seg.Data()
	fmt.Println(binary.LittleEndian.Uint64(d), binary.LittleEndian.Uint64(d[8:]))
	// Output:
	// repaired
	// 3 3
}

// Mutex.Lock knows nothing of Repair: a caller that locks directly gets
// ErrOwnerDied with the lock held, repairs, and marks it consistent.
func ExampleSegment_Mutex() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	seg, err := segment.Open("direct", segment.Dir(dir), segment.Size(8))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer seg.Close()

	m := seg.Mutex()
	switch err := m.Lock(); {
	case errors.Is(err, robustlock.ErrOwnerDied):
		// The lock IS held: repair seg.Data(), then declare it repaired.
		if err := m.MarkConsistent(); err != nil {
			fmt.Println(err)
		}
	case err != nil:
		fmt.Println(err)
		return
	}
	seg.Data()[0]++
	if err := m.Unlock(); err != nil {
		fmt.Println(err)
	}
	fmt.Println(seg.Data()[0])
	// Output: 1
}
