package segment

import (
	"encoding/binary"
	"time"
	"unsafe"

	"github.com/futexlab/robustlock"
)

// Magic is the first 8 bytes of every segment file.
const Magic = "RLOCKSEG"

// Version is the header layout version this package writes and reads.
const Version = 1

// HeaderSize is the size of the version 1 header.
const HeaderSize = 128

// Where new segments put things: mutexes one per 64-byte cache line right
// after the header, data on the next cache line after them.
const (
	mutexStride = 64
	dataAlign   = 64
	byteOrder   = 0x01020304 // written natively; reads back otherwise on a foreign byte order
	wordSize    = int(unsafe.Sizeof(uintptr(0)))
	maxStride   = 4096
	maxTotal    = MaxSize + HeaderSize + (MaxMutexes+1)*maxStride + dataAlign
)

// Offsets of the version 1 header's fields (doc.go has the table and the
// C struct). All integers are in the creating machine's byte order.
const (
	offMagic       = 0  // char[8]
	offVersion     = 8  // uint32
	offWordSize    = 12 // uint16
	offMutexSize   = 14 // uint16
	offByteOrder   = 16 // uint32
	offHeaderSize  = 20 // uint32
	offMutexCount  = 24 // uint32
	offMutexStride = 28 // uint32
	offMutexOffset = 32 // uint64
	offDataOffset  = 40 // uint64
	offDataSize    = 48 // uint64
	offTotalSize   = 56 // uint64
	offCreatorPID  = 64 // int32
	offFlags       = 68 // uint32, zero
	offCreated     = 72 // int64
	offPIDNS       = 80 // uint64
	offReserved    = 88 // 40 zero bytes up to HeaderSize
)

// Header is a segment's header, as Open validated it (or Stat read it).
// It never changes after publication.
type Header struct {
	Version      uint32
	WordSize     int       // bytes in a pointer of the creating ABI (8)
	MutexSize    int       // robustlock.Size of the creating ABI
	HeaderSize   int       // bytes of header (HeaderSize)
	MutexCount   int       // mutexes, the segment's own lock (number 0) included
	MutexStride  int       // bytes from one mutex to the next
	MutexOffset  int64     // file offset of mutex 0
	DataOffset   int64     // file offset of the user data
	DataSize     int64     // bytes of user data
	TotalSize    int64     // bytes in the file
	CreatorPID   int       // the creator's process id, in its PID namespace
	Created      time.Time // when the creator built it
	PIDNamespace uint64    // inode of the creator's /proc/self/ns/pid; 0 if unknown
}

// MutexOff returns the file offset of mutex i (0 is the segment's lock).
func (h *Header) MutexOff(i int) int64 {
	return h.MutexOffset + int64(i)*int64(h.MutexStride)
}

// newHeader lays out a segment with dataSize bytes of data and extra
// mutexes besides its own lock.
func newHeader(dataSize, extra int, pid int, pidns uint64, now time.Time) Header {
	count := extra + 1
	mutexOff := int64(HeaderSize)
	dataOff := alignUp(mutexOff+int64(count)*mutexStride, dataAlign)
	return Header{
		Version:      Version,
		WordSize:     wordSize,
		MutexSize:    robustlock.Size,
		HeaderSize:   HeaderSize,
		MutexCount:   count,
		MutexStride:  mutexStride,
		MutexOffset:  mutexOff,
		DataOffset:   dataOff,
		DataSize:     int64(dataSize),
		TotalSize:    dataOff + int64(dataSize),
		CreatorPID:   pid,
		Created:      now,
		PIDNamespace: pidns,
	}
}

func alignUp(n, a int64) int64 { return (n + a - 1) &^ (a - 1) }

var ne = binary.NativeEndian

// putFields writes every field but the magic into b[:HeaderSize], reserved
// bytes zeroed. The creator writes the magic last (putMagic), so a file
// never carries the magic before the rest of its header.
func (h *Header) putFields(b []byte) {
	_ = b[HeaderSize-1]
	ne.PutUint32(b[offVersion:], h.Version)
	ne.PutUint16(b[offWordSize:], uint16(h.WordSize))
	ne.PutUint16(b[offMutexSize:], uint16(h.MutexSize))
	ne.PutUint32(b[offByteOrder:], byteOrder)
	ne.PutUint32(b[offHeaderSize:], uint32(h.HeaderSize))
	ne.PutUint32(b[offMutexCount:], uint32(h.MutexCount))
	ne.PutUint32(b[offMutexStride:], uint32(h.MutexStride))
	ne.PutUint64(b[offMutexOffset:], uint64(h.MutexOffset))
	ne.PutUint64(b[offDataOffset:], uint64(h.DataOffset))
	ne.PutUint64(b[offDataSize:], uint64(h.DataSize))
	ne.PutUint64(b[offTotalSize:], uint64(h.TotalSize))
	ne.PutUint32(b[offCreatorPID:], uint32(int32(h.CreatorPID)))
	ne.PutUint32(b[offFlags:], 0)
	ne.PutUint64(b[offCreated:], uint64(h.Created.UnixNano()))
	ne.PutUint64(b[offPIDNS:], h.PIDNamespace)
	clear(b[offReserved:HeaderSize])
}

func putMagic(b []byte) { copy(b[offMagic:offMagic+len(Magic)], Magic) }

// parseHeader validates the header at the start of a file of fileSize
// bytes whose first min(fileSize, HeaderSize) bytes are b, and returns it.
// It accepts exactly the headers putFields and putMagic write for a file of
// that size, with any values in the creator's fields (PID, time,
// namespace); anything else is an error wrapping ErrTruncated,
// ErrBadMagic, ErrVersion, ErrABI or ErrCorrupt. It never panics.
func parseHeader(b []byte, fileSize int64) (Header, error) {
	var h Header
	if int64(len(b)) > fileSize {
		b = b[:max(fileSize, 0)]
	}
	if len(b) < len(Magic) {
		// Not a segment cut short: a published segment is always whole.
		return h, detail(ErrBadMagic, "%d bytes, shorter than the magic", fileSize)
	}
	if string(b[:len(Magic)]) != Magic {
		return h, detail(ErrBadMagic, "%q", b[:len(Magic)])
	}
	if len(b) < HeaderSize {
		return h, detail(ErrTruncated, "%d bytes, shorter than the %d-byte header", fileSize, HeaderSize)
	}
	if v := ne.Uint32(b[offVersion:]); v != Version {
		return h, detail(ErrVersion, "version %d, this package reads %d", v, Version)
	}
	if bo := ne.Uint32(b[offByteOrder:]); bo != byteOrder {
		return h, detail(ErrABI, "byte order mark %#x", bo)
	}
	h.Version = Version
	h.WordSize = int(ne.Uint16(b[offWordSize:]))
	h.MutexSize = int(ne.Uint16(b[offMutexSize:]))
	if h.WordSize != wordSize || h.MutexSize != robustlock.Size {
		return h, detail(ErrABI, "word size %d and mutex size %d, this process has %d and %d",
			h.WordSize, h.MutexSize, wordSize, robustlock.Size)
	}
	h.HeaderSize = int(ne.Uint32(b[offHeaderSize:]))
	h.MutexCount = int(ne.Uint32(b[offMutexCount:]))
	h.MutexStride = int(ne.Uint32(b[offMutexStride:]))
	mutexOff := ne.Uint64(b[offMutexOffset:])
	dataOff := ne.Uint64(b[offDataOffset:])
	dataSize := ne.Uint64(b[offDataSize:])
	total := ne.Uint64(b[offTotalSize:])
	h.CreatorPID = int(int32(ne.Uint32(b[offCreatorPID:])))
	h.Created = time.Unix(0, int64(ne.Uint64(b[offCreated:])))
	h.PIDNamespace = ne.Uint64(b[offPIDNS:])

	switch {
	case h.HeaderSize != HeaderSize:
		return h, detail(ErrCorrupt, "header size %d, version %d has %d", h.HeaderSize, Version, HeaderSize)
	case ne.Uint32(b[offFlags:]) != 0 || !allZero(b[offReserved:HeaderSize]):
		return h, detail(ErrCorrupt, "reserved fields are not zero")
	case h.CreatorPID <= 0:
		return h, detail(ErrCorrupt, "creator pid %d", h.CreatorPID)
	case h.MutexCount < 1 || h.MutexCount > MaxMutexes+1:
		return h, detail(ErrCorrupt, "%d mutexes", h.MutexCount)
	case h.MutexStride < h.MutexSize || h.MutexStride > maxStride || h.MutexStride%8 != 0:
		return h, detail(ErrCorrupt, "mutex stride %d", h.MutexStride)
	case total > maxTotal || dataSize > MaxSize || mutexOff > maxTotal || dataOff > maxTotal:
		// Bounds every sum below far from overflow.
		return h, detail(ErrCorrupt, "sizes out of range (total %d, data %d at %d, mutexes at %d)",
			total, dataSize, dataOff, mutexOff)
	case mutexOff < HeaderSize || mutexOff%8 != 0:
		return h, detail(ErrCorrupt, "mutexes at offset %d", mutexOff)
	case dataOff%8 != 0 || dataOff < mutexOff+uint64(h.MutexCount)*uint64(h.MutexStride):
		return h, detail(ErrCorrupt, "data at offset %d overlaps the mutexes at %d", dataOff, mutexOff)
	case dataOff+dataSize != total:
		return h, detail(ErrCorrupt, "data %d bytes at %d does not end at the total size %d", dataSize, dataOff, total)
	case total > uint64(fileSize):
		return h, detail(ErrTruncated, "header says %d bytes, file has %d", total, fileSize)
	case total < uint64(fileSize):
		return h, detail(ErrCorrupt, "header says %d bytes, file has %d", total, fileSize)
	}
	h.MutexOffset, h.DataOffset = int64(mutexOff), int64(dataOff)
	h.DataSize, h.TotalSize = int64(dataSize), int64(total)
	return h, nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
