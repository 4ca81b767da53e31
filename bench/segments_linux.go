package bench

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/futexlab/robustlock/segment"
	"golang.org/x/sys/unix"
)

// segments measures opening a published segment and creating a new one,
// beside the same steps on a plain file without the checks.
func (s *suite) segments() error {
	fmt.Fprintln(s.log, "segments: open an existing one, create+publish a new one")
	dir := filepath.Join(s.dir, "segments")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	const size = 4096
	seg, err := segment.Open("existing", segment.Size(size), segment.Dir(dir))
	if err != nil {
		return err
	}
	seg.Close()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, make([]byte, size), 0o600); err != nil {
		return err
	}
	n := s.opt.segOps
	serial := 0
	ops := []struct {
		name, what string
		run        func() (int64, error) // ns for one op
	}{
		{"segment open", "segment.Open of a published segment (validated), then Close", func() (int64, error) {
			t := nanotime()
			sg, err := segment.Open("existing", segment.Dir(dir))
			if err != nil {
				return 0, err
			}
			err = sg.Close()
			return nanotime() - t, err
		}},
		{"plain open", "open(2), fstat, mmap, munmap, close of a plain file (no checks)", func() (int64, error) {
			t := nanotime()
			err := mapPlain(plain, 0, size)
			return nanotime() - t, err
		}},
		{"segment create", "segment.Open with Size, CreateOnly: build, link, map (Close and Remove untimed)", func() (int64, error) {
			serial++
			name := fmt.Sprintf("new-%d", serial)
			t := nanotime()
			sg, err := segment.Open(name, segment.Size(size), segment.CreateOnly(), segment.Dir(dir))
			d := nanotime() - t
			if err != nil {
				return 0, err
			}
			sg.Close()
			return d, segment.Remove(name, segment.Dir(dir))
		}},
		{"plain create", "open O_CREAT|O_EXCL, ftruncate, mmap, munmap, close (unlink untimed)", func() (int64, error) {
			serial++
			name := filepath.Join(dir, fmt.Sprintf("plain-%d", serial))
			t := nanotime()
			err := mapPlain(name, os.O_CREATE|os.O_EXCL, size)
			d := nanotime() - t
			os.Remove(name)
			return d, err
		}},
	}
	for _, op := range ops {
		op.run() // warm up
		var per []float64
		for rep := 0; rep < s.opt.reps; rep++ {
			if err := s.ctx.Err(); err != nil {
				return err
			}
			var total int64
			for range n {
				d, err := op.run()
				if err != nil {
					return fmt.Errorf("%s: %w", op.name, err)
				}
				total += d
			}
			per = append(per, float64(total)/float64(n))
			s.step("segment")
		}
		row := segRow{Name: op.name, What: op.what, NsOp: summarize(per), N: n}
		s.rep.Segment = append(s.rep.Segment, row)
		s.progress("%-15s %s [%s]", op.name, fmtNs(row.NsOp.Median), spreadNs(row.NsOp))
	}
	return nil
}

func mapPlain(path string, flags int, size int) error {
	f, err := os.OpenFile(path, os.O_RDWR|flags, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if flags&os.O_CREATE != 0 {
		if err := f.Truncate(int64(size)); err != nil {
			return err
		}
	} else if _, err := f.Stat(); err != nil {
		return err
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	return unix.Munmap(mem)
}
