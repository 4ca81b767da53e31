//go:build !linux

package segment

// Off Linux there are no robust futexes, so there are no segments: every
// entry point reports ErrUnsupported.

// Open returns ErrUnsupported: segments need Linux. A bad name or option
// is reported first, as on Linux.
func Open(name string, opts ...Option) (*Segment, error) {
	c := newConfig(opts)
	switch {
	case !validName(name):
		return nil, &Error{Op: "open", Name: name, Err: detail(ErrBadName, "%q", name)}
	case c.check() != nil:
		return nil, &Error{Op: "open", Name: name, Err: c.check()}
	}
	return nil, &Error{Op: "open", Name: name, Err: ErrUnsupported}
}

// Stat returns ErrUnsupported: segments need Linux.
func Stat(name string, opts ...Option) (Info, error) {
	return Info{}, &Error{Op: "stat", Name: name, Err: ErrUnsupported}
}

// List returns ErrUnsupported: segments need Linux.
func List(opts ...Option) ([]Info, error) {
	return nil, &Error{Op: "list", Err: ErrUnsupported}
}

// Remove returns ErrUnsupported: segments need Linux.
func Remove(name string, opts ...Option) error {
	return &Error{Op: "remove", Name: name, Err: ErrUnsupported}
}

// unmap is never reached: Open never succeeds here.
func unmap(mem []byte) error { return ErrUnsupported }

// reserve is never reached: Open never succeeds here.
func reserve(mem []byte) error { return ErrUnsupported }

// The Linux publication protocol's test-only knob means nothing here.
var _ = config{}.fallbackOnly
