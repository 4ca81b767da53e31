package event

import (
	"sync"

	"github.com/futexlab/robustlock/segment"
)

// Channels of one process that open the same file share one mapping of
// it. Besides saving memory, this is needed for Close: segment.Close
// refuses while any thread of the process holds one of the file's robust
// words (it cannot tell through which mapping), and a request slot's words
// are held by a holder thread for as long as a request is in flight, so a
// second mapping of a file in use could never be closed.
//
// Synchronization: mappings.mu guards m and every mapping's refs.
var mappings struct {
	mu sync.Mutex
	m  map[fileID]*mapping
}

//lint:ignore U1000 set by the Linux open path; other systems never open a channel
type fileID struct{ dev, ino uint64 }

type mapping struct {
	seg  *segment.Segment
	id   fileID
	refs int
}

// shared returns the process's mapping of the file at path, with one more
// reference, or nil.
func shared(path string) *mapping {
	id, ok := statID(path)
	if !ok {
		return nil
	}
	mappings.mu.Lock()
	defer mappings.mu.Unlock()
	mp := mappings.m[id]
	if mp != nil {
		mp.refs++
	}
	return mp
}

// sharedUnless is shared, unless CreateOnly asks for a new file.
func sharedUnless(createOnly bool, path string) *mapping {
	if createOnly {
		return nil
	}
	return shared(path)
}

// register records seg, just opened, as the process's mapping of its file
// (unless another Open of the same file won a race to it: then seg stays
// its Channel's own and nil is returned).
func register(seg *segment.Segment) *mapping {
	id, ok := statID(seg.Path())
	if !ok {
		return nil
	}
	mappings.mu.Lock()
	defer mappings.mu.Unlock()
	if mappings.m == nil {
		mappings.m = make(map[fileID]*mapping)
	}
	if mappings.m[id] != nil {
		return nil
	}
	mp := &mapping{seg: seg, id: id, refs: 1}
	mappings.m[id] = mp
	return mp
}

// release drops a reference and closes the segment with the last one.
func release(mp *mapping) error {
	mappings.mu.Lock()
	mp.refs--
	last := mp.refs == 0
	if last {
		delete(mappings.m, mp.id)
	}
	mappings.mu.Unlock()
	if last {
		return mp.seg.Close()
	}
	return nil
}
