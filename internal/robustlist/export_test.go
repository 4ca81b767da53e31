//go:build linux

package robustlist

// Indexed returns the number of records in the live index (test-only).
func Indexed() int {
	liveMu.Lock()
	defer liveMu.Unlock()
	return len(live)
}
