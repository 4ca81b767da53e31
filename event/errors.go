package event

import (
	"errors"
	"fmt"

	"github.com/futexlab/robustlock/segment"
)

// Errors of this package. Each is distinct and errors.Is-comparable; Open
// also returns package segment's errors (wrapped in a *segment.Error) for
// files that are not valid segments.
var (
	// ErrTooLarge: a message, request or response is longer than the
	// channel's MaxMessage. Nothing was sent.
	ErrTooLarge = errors.New("event: message larger than the channel's MaxMessage")

	// ErrLapped: the subscriber fell more than Capacity messages behind and
	// the ones it missed were overwritten. The error is a *LappedError
	// with the exact count; the subscription goes on at the oldest message
	// still kept.
	ErrLapped = errors.New("event: subscriber lapped by the publishers")

	// ErrServerDied: the server that took the request died (or closed its
	// Channel) before responding. Also returned when the request's slot
	// was found in a state no live request can be in (a faulty peer wrote
	// it): the request is lost, and the slot is repaired for reuse.
	ErrServerDied = errors.New("event: the server died holding the request")

	// ErrRequesterGone: the requester died or gave up before the response;
	// nothing was delivered and the request's slot is free again.
	ErrRequesterGone = errors.New("event: the requester is gone")

	// ErrResponded: Respond was called again on a Request already answered
	// (or found gone).
	ErrResponded = errors.New("event: request already responded to")

	// ErrBadChannel: the segment is not an event channel this package
	// reads, or its layout is inconsistent (a length, count or offset out
	// of range), or shared state was found impossible at run time.
	// errors.Is(err, segment.ErrCorrupt) holds too.
	ErrBadChannel = fmt.Errorf("event: not a valid event channel: %w", segment.ErrCorrupt)

	// ErrMismatch: the channel exists with a Capacity, MaxMessage or
	// Requests other than the options asked for. Channels are never
	// resized. errors.Is(err, segment.ErrSizeMismatch) holds too.
	ErrMismatch = fmt.Errorf("event: channel exists with other sizes: %w", segment.ErrSizeMismatch)

	// ErrClosed: the Channel has been closed.
	ErrClosed = errors.New("event: channel is closed")

	// ErrInvalidOption: an option is out of range.
	ErrInvalidOption = errors.New("event: invalid option")
)

// LappedError is the ErrLapped a subscriber gets, with the exact number of
// messages it missed. errors.Is(err, ErrLapped) holds for it.
type LappedError struct {
	Missed uint64 // messages published and overwritten before this subscriber read them
}

// Error says how many messages were missed.
func (e *LappedError) Error() string {
	return fmt.Sprintf("event: subscriber lapped: %d messages missed", e.Missed)
}

// Is makes errors.Is(err, ErrLapped) hold.
func (e *LappedError) Is(target error) bool { return target == ErrLapped }

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadChannel}, args...)...)
}
