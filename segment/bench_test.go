//go:build linux

package segment

import "testing"

// BenchmarkClose measures Close of an open segment (Open is outside the
// timer): the held and busy checks, then munmap, in a process whose
// threads have locked before. The busy check reads this process's
// robust-list records.
func BenchmarkClose(b *testing.B) {
	dir := b.TempDir()
	s, err := Open("bench", Dir(dir), Size(64))
	if err != nil {
		b.Fatal(err)
	}
	// Register a robust list, as any process using its segments has.
	if err := s.Mutex().Lock(); err != nil {
		b.Fatal(err)
	}
	if err := s.Mutex().Unlock(); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		s, err := Open("bench", Dir(dir), OpenOnly())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
