package segment

import (
	"bytes"
	"errors"
	"testing"
	"time"
	"unsafe"

	"github.com/futexlab/robustlock"
)

// seedFile returns a valid segment file of the given shape, built the way
// Open builds one (without the mutexes' contents, which the parser ignores).
func seedFile(dataSize, extra int) []byte {
	h := newHeader(dataSize, extra, 4242, 4026531836, time.Unix(0, 1700000000123456789))
	b := make([]byte, h.TotalSize)
	h.putFields(b)
	putMagic(b)
	return b
}

// FuzzParseHeader: the parser never panics, accepts only headers that
// describe the file consistently, and accepts nothing but what the writer
// writes. The committed corpus in testdata/fuzz/FuzzParseHeader holds
// valid files of several shapes and one of each kind of defect.
func FuzzParseHeader(f *testing.F) {
	f.Add(seedFile(0, 0))
	f.Add(seedFile(100, 3))
	f.Add([]byte(Magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		n := int64(len(b))
		h, err := parseHeader(b, n)
		if err != nil {
			for _, want := range []error{ErrTruncated, ErrBadMagic, ErrVersion, ErrABI, ErrCorrupt} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("error of no known kind: %v", err)
		}
		// Accepted: the regions lie inside the file in order, aligned.
		last := h.MutexOff(h.MutexCount - 1)
		switch {
		case h.MutexCount < 1, h.MutexOffset < HeaderSize, h.MutexOffset%8 != 0, h.MutexStride%8 != 0,
			h.MutexStride < robustlock.Size, last+int64(robustlock.Size) > h.DataOffset,
			h.DataOffset%8 != 0, h.DataOffset+h.DataSize != h.TotalSize, h.TotalSize != n, h.CreatorPID <= 0:
			t.Fatalf("accepted an inconsistent header: %+v for %d bytes", h, n)
		}
		// What the writer makes of it is the input, byte for byte.
		out := make([]byte, HeaderSize)
		h.putFields(out)
		putMagic(out)
		if !bytes.Equal(out, b[:HeaderSize]) {
			t.Fatalf("accepted a header the writer would not write:\n in %x\nout %x", b[:HeaderSize], out)
		}
		// The same bytes in a file of another size are refused.
		if _, err := parseHeader(b, n+1); err == nil {
			t.Fatal("accepted a file longer than its header says")
		}
		if _, err := parseHeader(b[:n-1], n-1); err == nil {
			t.Fatal("accepted a file shorter than its header says")
		}
	})
}

// cHeader mirrors the C struct in doc.go with Go's (here identical)
// alignment rules; TestHeaderLayout holds the offsets to the documented ones.
type cHeader struct {
	magic       [8]byte
	version     uint32
	wordSize    uint16
	mutexSize   uint16
	byteOrder   uint32
	headerSize  uint32
	mutexCount  uint32
	mutexStride uint32
	mutexOffset uint64
	dataOffset  uint64
	dataSize    uint64
	totalSize   uint64
	creatorPID  int32
	flags       uint32
	createdNS   int64
	pidnsIno    uint64
	reserved    [40]byte
}

func TestHeaderLayout(t *testing.T) {
	var c cHeader
	for _, f := range []struct {
		name      string
		got, want uintptr
	}{
		{"magic", unsafe.Offsetof(c.magic), offMagic},
		{"version", unsafe.Offsetof(c.version), offVersion},
		{"word_size", unsafe.Offsetof(c.wordSize), offWordSize},
		{"mutex_size", unsafe.Offsetof(c.mutexSize), offMutexSize},
		{"byte_order", unsafe.Offsetof(c.byteOrder), offByteOrder},
		{"header_size", unsafe.Offsetof(c.headerSize), offHeaderSize},
		{"mutex_count", unsafe.Offsetof(c.mutexCount), offMutexCount},
		{"mutex_stride", unsafe.Offsetof(c.mutexStride), offMutexStride},
		{"mutex_offset", unsafe.Offsetof(c.mutexOffset), offMutexOffset},
		{"data_offset", unsafe.Offsetof(c.dataOffset), offDataOffset},
		{"data_size", unsafe.Offsetof(c.dataSize), offDataSize},
		{"total_size", unsafe.Offsetof(c.totalSize), offTotalSize},
		{"creator_pid", unsafe.Offsetof(c.creatorPID), offCreatorPID},
		{"flags", unsafe.Offsetof(c.flags), offFlags},
		{"created_ns", unsafe.Offsetof(c.createdNS), offCreated},
		{"pidns_ino", unsafe.Offsetof(c.pidnsIno), offPIDNS},
		{"reserved", unsafe.Offsetof(c.reserved), offReserved},
		{"sizeof", unsafe.Sizeof(c), HeaderSize},
	} {
		if f.got != f.want {
			t.Errorf("%s at %d, documented at %d", f.name, f.got, f.want)
		}
	}
	// New segments put mutexes and data on cache lines.
	h := newHeader(10, 5, 1, 0, time.Now())
	for i := range h.MutexCount {
		if h.MutexOff(i)%64 != 0 {
			t.Errorf("mutex %d at %d", i, h.MutexOff(i))
		}
	}
	if h.DataOffset%64 != 0 || h.DataOffset < h.MutexOff(h.MutexCount) {
		t.Errorf("data at %d", h.DataOffset)
	}
}
