//go:build !linux

package segment

// Walk returns ErrUnsupported: segments need Linux.
func Walk(fn func(Entry) error, opts ...Option) error {
	return &Error{Op: "list", Err: ErrUnsupported}
}
