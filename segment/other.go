//go:build !linux

package segment

// Off Linux there are no robust futexes, so there are no segments: every
// entry point reports ErrUnsupported.

// Open returns ErrUnsupported: segments need Linux.
func Open(name string, opts ...Option) (*Segment, error) {
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
