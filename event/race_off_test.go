//go:build linux && !race

package event

const raceEnabled = false
