//go:build !race

package robustlock_test

const raceEnabled = false
