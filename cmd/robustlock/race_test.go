//go:build linux && race

package main

// raceEnabled builds the command under test with -race too.
const raceEnabled = true
