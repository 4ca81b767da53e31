package event

import (
	"io/fs"

	"github.com/futexlab/robustlock/segment"
)

// Defaults and limits of a channel's sizes.
const (
	DefaultCapacity   = 64   // messages kept in the ring
	DefaultMaxMessage = 1024 // bytes in a message, request or response
	DefaultRequests   = 16   // request slots

	MaxCapacity   = 1 << 20
	MaxMessageLen = 1 << 20
	// MaxRequests bounds the queue so that a requester waiting for a free
	// slot can sleep on every slot's two words in one futex_waitv.
	MaxRequests = 64
)

// An Option adjusts Open.
type Option func(*config)

type config struct {
	capacity, maxMessage, requests int
	capSet, maxSet, reqSet         bool
	seg                            []segment.Option
	dir                            string
	openOnly, createOnly           bool
	bad                            string
}

// Capacity sets how many messages the ring keeps (default
// DefaultCapacity, at most MaxCapacity). A subscriber that falls further
// behind is lapped. An existing channel with another capacity is
// ErrMismatch.
func Capacity(n int) Option {
	return func(c *config) {
		if n < 1 || n > MaxCapacity {
			c.bad = "Capacity out of range"
		}
		c.capacity, c.capSet = n, true
	}
}

// MaxMessage sets the largest message, request or response in bytes
// (default DefaultMaxMessage, at most MaxMessageLen). An existing channel
// with another maximum is ErrMismatch.
func MaxMessage(n int) Option {
	return func(c *config) {
		if n < 1 || n > MaxMessageLen {
			c.bad = "MaxMessage out of range"
		}
		c.maxMessage, c.maxSet = n, true
	}
}

// Requests sets the number of request slots, the bound of the request
// queue (default DefaultRequests, at most MaxRequests). An existing
// channel with another number is ErrMismatch.
func Requests(n int) Option {
	return func(c *config) {
		if n < 1 || n > MaxRequests {
			c.bad = "Requests out of range"
		}
		c.requests, c.reqSet = n, true
	}
}

// Dir sets the directory holding the channel's segment (segment.Dir;
// default /dev/shm).
func Dir(path string) Option {
	return func(c *config) { c.seg, c.dir = append(c.seg, segment.Dir(path)), path }
}

// Mode sets a new channel's permission bits (segment.Mode; default 0600).
func Mode(perm fs.FileMode) Option {
	return func(c *config) { c.seg = append(c.seg, segment.Mode(perm)) }
}

// CreateOnly makes Open fail unless it creates the channel
// (segment.CreateOnly).
func CreateOnly() Option {
	return func(c *config) { c.seg, c.createOnly = append(c.seg, segment.CreateOnly()), true }
}

// OpenOnly makes Open fail instead of creating the channel
// (segment.OpenOnly).
func OpenOnly() Option {
	return func(c *config) { c.openOnly = true }
}

// SegmentOptions passes further options (TrustOwner,
// AllowOtherPIDNamespace, ...) to segment.Open.
func SegmentOptions(opts ...segment.Option) Option {
	return func(c *config) { c.seg = append(c.seg, opts...) }
}

func newConfig(opts []Option) config {
	c := config{capacity: DefaultCapacity, maxMessage: DefaultMaxMessage, requests: DefaultRequests, dir: segment.DefaultDir}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}
