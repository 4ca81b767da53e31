//go:build linux && !cgo

package e2e

import "time"

// With CGO_ENABLED=0 the workers register their own robust lists, as a
// static binary does; a shorter soak proves that path (see soakDefault).
func init() { soakDefault = 25 * time.Second }
