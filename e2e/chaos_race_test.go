//go:build linux && race

package e2e

import "time"

// Under -race the Go workers' threads are glibc's and join glibc's robust
// lists; a shorter soak proves that path (see soakDefault).
func init() { soakDefault = 25 * time.Second }
