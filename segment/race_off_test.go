//go:build linux && !race

package segment

// raceEnabled: the race detector makes each helper process start slowly,
// so the tests that spawn many of them spawn fewer.
const raceEnabled = false
