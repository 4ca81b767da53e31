//go:build linux && !race

package robustlock_test

const raceEnabled = false
