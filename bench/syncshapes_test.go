package bench

import "testing"

// BenchmarkSyncShapes runs Go's sync.Mutex benchmark shapes on sync.Mutex
// and on robustlock.Mutex, side by side in one run: compare
// .../SHAPE/robustlock with .../SHAPE/sync (benchstat, or robustlock-bench,
// which prints the ratios).
func BenchmarkSyncShapes(b *testing.B) {
	syncL, robustL, free, err := SyncLockers()
	if err != nil {
		b.Fatal(err)
	}
	defer free()
	for _, s := range SyncShapes {
		b.Run(s.Name+"/sync", func(b *testing.B) { s.Run(b, syncL) })
		b.Run(s.Name+"/robustlock", func(b *testing.B) { s.Run(b, robustL) })
	}
}
