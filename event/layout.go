package event

// Channel layout, version 1: the data of a segment (package segment; its
// own header, mutexes and validation come first). All integers are in the
// machine's byte order; offsets are from the start of the segment's data,
// which is 64-byte aligned. The creator writes the whole layout in the
// segment's Init, before publication, so no process ever sees it half
// built; after that only the words marked "live" change.
//
//	offset size type     field           meaning
//	     0    8 char[8]  magic           "RLOCKEVT"
//	     8    4 uint32   version         1
//	    12    4 uint32   header_size     128
//	    16    4 uint32   capacity        ring slots: messages kept, 1..MaxCapacity
//	    20    4 uint32   max_message     bytes in a message/request/response, 1..MaxMessageLen
//	    24    4 uint32   slot_stride     bytes per ring slot: roundup(16 + max_message, 64)
//	    28    4 uint32   requests        request slots, 1..MaxRequests
//	    32    4 uint32   request_stride  bytes per request slot: roundup(64 + max_message, 64)
//	    36    4 uint32   flags           0
//	    40    8 uint64   ring_offset     384
//	    48    8 uint64   queue_offset    ring_offset + capacity*slot_stride
//	    56    8 uint64   total_size      queue_offset + requests*request_stride == data size
//	    64   64 uint8[]  reserved        0
//	   128    8 uint64   head      live  messages committed so far; message n is in slot n % capacity
//	   192    4 uint32   bell      live  futex word subscribers sleep on: (head<<1) | sleeper bit
//	   256    4 uint32   qbell     live  futex word servers sleep on: (queued count<<1) | sleeper bit
//	   264    8 uint64   qtick     live  last ticket given to a queued request (FIFO order)
//	   320   64                          reserved 0
//	   384                               ring: capacity slots, then the request slots
//
// Ring slot (slot_stride bytes):
//
//	     0    8 uint64   ver       seqlock: 0 never written; 2n+1 while message n is
//	                               being written into it; 2n+2 once message n is whole
//	     8    4 uint32   len       bytes of message, <= max_message
//	    12    4 uint32   reserved
//	    16  max uint8[]  message
//
// Request slot i (request_stride bytes); its two robust words are the lock
// words of the segment's mutexes 1+2i (rq) and 2+2i (cl), so that the
// kernel's robust-list machinery covers them:
//
//	     0    4 uint32   st        live  phase (low 4 bits) | ticket<<4: Free, Filling,
//	                                     Queued, Claimed, Responded, Abandoned
//	     4    4 uint32   req_len   bytes of request
//	     8    4 uint32   resp_len  bytes of response
//	    12    4 uint32   reserved
//	    16    8 uint64   qseq      ticket from qtick when queued: oldest first
//	    24   40                    reserved
//	    64  max uint8[]  data      the request, then the response over it
//
// Validation (parseHeader) accepts a layout only if every field holds
// exactly what this version computes from capacity, max_message and
// requests, the reserved bytes are zero, and the segment has 1+2*requests
// mutexes. Live words are not trusted either: every index is reduced
// modulo a validated count and every length checked against max_message
// before use.

import (
	"encoding/binary"
	"unsafe"
)

const (
	magic      = "RLOCKEVT"
	version    = 1
	headerSize = 128
	offHead    = 128
	offBell    = 192
	offQBell   = 256
	offQTick   = 264
	ringOffset = 384
	slotHdr    = 16
	reqHdr     = 64
	lineSize   = 64
)

// layout is a validated channel header.
type layout struct {
	capacity, maxMessage, slotStride int
	requests, reqStride              int
	ringOff, queueOff, total         int
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }

func newLayout(capacity, maxMessage, requests int) layout {
	l := layout{capacity: capacity, maxMessage: maxMessage, requests: requests}
	l.slotStride = roundUp(slotHdr+maxMessage, lineSize)
	l.reqStride = roundUp(reqHdr+maxMessage, lineSize)
	l.ringOff = ringOffset
	l.queueOff = l.ringOff + capacity*l.slotStride
	l.total = l.queueOff + requests*l.reqStride
	return l
}

var ne = binary.NativeEndian

// write stores l's header at the start of data (zeroed by segment).
func (l layout) write(data []byte) {
	copy(data, magic)
	ne.PutUint32(data[8:], version)
	ne.PutUint32(data[12:], headerSize)
	ne.PutUint32(data[16:], uint32(l.capacity))
	ne.PutUint32(data[20:], uint32(l.maxMessage))
	ne.PutUint32(data[24:], uint32(l.slotStride))
	ne.PutUint32(data[28:], uint32(l.requests))
	ne.PutUint32(data[32:], uint32(l.reqStride))
	ne.PutUint64(data[40:], uint64(l.ringOff))
	ne.PutUint64(data[48:], uint64(l.queueOff))
	ne.PutUint64(data[56:], uint64(l.total))
}

// parseHeader validates a channel header in data (a segment's whole data)
// and returns its layout. It only reads.
func parseHeader(data []byte) (layout, error) {
	if len(data) < ringOffset {
		return layout{}, bad("data of %d bytes is shorter than the channel header", len(data))
	}
	if string(data[:8]) != magic {
		return layout{}, bad("wrong magic %q", data[:8])
	}
	if v := ne.Uint32(data[8:]); v != version {
		return layout{}, bad("version %d, this package reads %d", v, version)
	}
	if h := ne.Uint32(data[12:]); h != headerSize {
		return layout{}, bad("header_size %d", h)
	}
	capacity, maxMsg, requests := ne.Uint32(data[16:]), ne.Uint32(data[20:]), ne.Uint32(data[28:])
	switch {
	case capacity < 1 || capacity > MaxCapacity:
		return layout{}, bad("capacity %d out of range", capacity)
	case maxMsg < 1 || maxMsg > MaxMessageLen:
		return layout{}, bad("max_message %d out of range", maxMsg)
	case requests < 1 || requests > MaxRequests:
		return layout{}, bad("requests %d out of range", requests)
	}
	if need := uint64(ringOffset) + uint64(capacity)*uint64(slotHdr+maxMsg+lineSize) +
		uint64(requests)*uint64(reqHdr+maxMsg+lineSize); need > uint64(len(data))+2*lineSize*uint64(capacity+requests) {
		return layout{}, bad("sizes need %d bytes, the segment holds %d", need, len(data))
	}
	l := newLayout(int(capacity), int(maxMsg), int(requests))
	switch {
	case ne.Uint32(data[24:]) != uint32(l.slotStride):
		return layout{}, bad("slot_stride %d, want %d", ne.Uint32(data[24:]), l.slotStride)
	case ne.Uint32(data[32:]) != uint32(l.reqStride):
		return layout{}, bad("request_stride %d, want %d", ne.Uint32(data[32:]), l.reqStride)
	case ne.Uint32(data[36:]) != 0:
		return layout{}, bad("flags %#x", ne.Uint32(data[36:]))
	case ne.Uint64(data[40:]) != uint64(l.ringOff):
		return layout{}, bad("ring_offset %d, want %d", ne.Uint64(data[40:]), l.ringOff)
	case ne.Uint64(data[48:]) != uint64(l.queueOff):
		return layout{}, bad("queue_offset %d, want %d", ne.Uint64(data[48:]), l.queueOff)
	case ne.Uint64(data[56:]) != uint64(l.total):
		return layout{}, bad("total_size %d, want %d", ne.Uint64(data[56:]), l.total)
	case l.total != len(data):
		return layout{}, bad("total_size %d but the segment holds %d data bytes", l.total, len(data))
	}
	for i := 64; i < headerSize; i++ {
		if data[i] != 0 {
			return layout{}, bad("reserved byte %d is %#x", i, data[i])
		}
	}
	return l, nil
}

// word views, for offsets the layout has validated.
func u32(data []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&data[off])) }
func u64(data []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&data[off])) }
