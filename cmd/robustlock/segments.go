package main

// ls, inspect and rm: robustlock's ipcs and ipcrm. reset is reset.go;
// what they print is report.go.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/futexlab/robustlock/segment"
)

func runLs(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("ls", "[-dir DIR] [--json] [DIR]", `
List the robustlock segments in a directory (default /dev/shm), like ipcs:
name, owner, permissions, size in bytes, number of mutexes, creator process,
age and the state of the segment's lock (mutex 0), with how many of its
other mutexes are not free. A segment that cannot be read (truncated,
corrupt) is listed as DAMAGED, with the reason. Files that are not segments
are skipped.

The work per file is bounded whatever its header claims: the header, mutex
0 and at most segment.ScanBudget bytes of mutexes are read, and /proc is
asked about mutex 0's holder only (inspect shows every mutex). --json
prints a JSON array, one object per segment, written as the directory is
read; the objects are described under "JSON output" in 'go doc
github.com/futexlab/robustlock/cmd/robustlock'.`, stdout, stderr)
	dir := fs.String("dir", segment.DefaultDir, "the `directory` to list")
	asJSON := fs.Bool("json", false, "print a JSON array, one object per segment (schema 1)")
	pos, status, ok := fs.parse(args)
	if !ok {
		return status
	}
	switch {
	case len(pos) > 1:
		return fs.usageError("want at most one DIR, got %d arguments", len(pos))
	case len(pos) == 1:
		*dir = pos[0]
	}
	p := newProber(time.Now())
	if *asJSON {
		return lsJSON(stdout, stderr, *dir, p)
	}
	var rows []segmentReport
	err := segment.Walk(func(e segment.Entry) error {
		rows = append(rows, p.entry(e))
		return nil
	}, segment.Dir(*dir))
	if err != nil {
		return failf(stderr, exitFail, "ls: %s", explain(err, *dir))
	}
	if len(rows) == 0 {
		fmt.Fprintf(stdout, "no robustlock segments in %s\n", *dir)
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tOWNER\tMODE\tSIZE\tMUTEXES\tCREATOR\tAGE\tLOCK")
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t%s\n", r.Name, ownerName(r), r.Mode, lockShort(r))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n",
			r.Name, ownerName(r), r.Mode, r.Size, r.MutexCount,
			creatorShort(r), age(p.now.Sub(r.Created)), lockShort(r))
	}
	tw.Flush()
	return exitOK
}

// lsJSON streams ls --json: each segment's object is written as soon as
// its file is read, so memory does not grow with the directory.
func lsJSON(stdout, stderr io.Writer, dir string, p *prober) int {
	if _, err := io.WriteString(stdout, "["); err != nil {
		return failf(stderr, exitFail, "ls: %v", err)
	}
	n := 0
	err := segment.Walk(func(e segment.Entry) error {
		b, err := json.MarshalIndent(p.entry(e), "  ", "  ")
		if err != nil {
			return err
		}
		sep := ",\n  "
		if n == 0 {
			sep = "\n  "
		}
		n++
		_, err = fmt.Fprintf(stdout, "%s%s", sep, b)
		return err
	}, segment.Dir(dir))
	if err != nil {
		return failf(stderr, exitFail, "ls: %s", explain(err, dir))
	}
	end := "]\n"
	if n > 0 {
		end = "\n]\n"
	}
	if _, err := io.WriteString(stdout, end); err != nil {
		return failf(stderr, exitFail, "ls: %v", err)
	}
	return exitOK
}

func runInspect(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("inspect", "[-dir DIR] [--json] NAME", `
Show a segment's header and the state of each of its mutexes, read without
locking anything: free or held, by which thread, whether that thread is
alive and which process it belongs to, waiters, owner died (the holder died
and the next locker will recover), inconsistent (being recovered) and not
recoverable. A file that is not a robustlock segment is refused; a damaged
one (truncated, corrupt) is reported as such. --json prints one object, as
ls --json does, with every mutex.`, stdout, stderr)
	dir := fs.String("dir", segment.DefaultDir, "the `directory` that holds the segment")
	asJSON := fs.Bool("json", false, "print one JSON object (schema 1)")
	pos, status, ok := fs.parse(args)
	if !ok {
		return status
	}
	if len(pos) != 1 {
		return fs.usageError("want one segment NAME, got %d arguments", len(pos))
	}
	name := pos[0]
	info, err := segment.Stat(name, segment.Dir(*dir))
	if err != nil {
		return failf(stderr, exitFail, "inspect %s: %s", name, explain(err, *dir))
	}
	p := newProber(time.Now())
	r := p.info(info)
	ch, chText := inspectChannel(name, *dir)
	if ch != nil {
		r.Channel = ch
	}
	if *asJSON {
		return writeJSON(stdout, stderr, "inspect", r)
	}
	printInspect(stdout, r, p.now)
	io.WriteString(stdout, chText)
	return exitOK
}

func runRm(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("rm", "[-dir DIR] NAME...", `
Remove segments, like ipcrm. Only files that start with the segment magic are
removed; anything else is refused and left alone. -force removes any regular
file under the name (a damaged segment: truncated or overwritten), still
never a symlink, directory or device. Processes that have a segment mapped
keep using it until they close it; the name is free at once.`, stdout, stderr)
	dir := fs.String("dir", segment.DefaultDir, "the `directory` that holds the segments")
	force := fs.Bool("force", false, "remove damaged segments too")
	pos, status, ok := fs.parse(args)
	if !ok {
		return status
	}
	if len(pos) == 0 {
		return fs.usageError("want at least one segment NAME")
	}
	status = exitOK
	for _, name := range pos {
		opts := []segment.Option{segment.Dir(*dir)}
		if *force {
			opts = append(opts, segment.Force())
		}
		if err := segment.Remove(name, opts...); err != nil {
			status = failf(stderr, exitFail, "rm %s: %s", name, explain(err, *dir))
		}
	}
	return status
}

// explain turns a segment error into the clause after "robustlock: CMD
// NAME: ", saying plainly when the file is not a segment at all.
func explain(err error, dir string) string {
	var se *segment.Error
	cause, path := err, ""
	if errors.As(err, &se) {
		cause, path = se.Err, se.Path
	}
	if path == "" {
		path = dir
	}
	switch {
	case errors.Is(err, segment.ErrNotExist):
		return fmt.Sprintf("no such segment: %s does not exist", path)
	case errors.Is(err, segment.ErrBadName):
		return fmt.Sprintf("%v (a name is 1 to %d letters, digits, '.', '_' or '-', not starting with '.')", cause, segment.MaxNameLen)
	case errors.Is(err, segment.ErrBadMagic),
		errors.Is(err, segment.ErrNotRegular),
		errors.Is(err, segment.ErrSymlink),
		errors.Is(err, segment.ErrTruncated) && !startsWithMagic(path):
		return fmt.Sprintf("%s is not a robustlock segment (%v); refusing to touch it", path, cause)
	case errors.Is(err, segment.ErrTruncated),
		errors.Is(err, segment.ErrCorrupt),
		errors.Is(err, segment.ErrFault):
		return fmt.Sprintf("%s is a damaged robustlock segment (%v); 'robustlock rm -force' removes it", path, cause)
	case errors.Is(err, segment.ErrVersion),
		errors.Is(err, segment.ErrABI):
		return fmt.Sprintf("%s is a robustlock segment this program cannot read (%v)", path, cause)
	case errors.Is(err, segment.ErrUnsupported):
		return "segments need Linux"
	case se != nil:
		// "segment: OP PATH: CAUSE" says the command's name twice over;
		// keep the cause, with the path unless the cause names it.
		msg := se.Err.Error()
		if !strings.Contains(msg, path) && !strings.Contains(msg, dir) {
			msg = path + ": " + msg
		}
		return msg
	}
	return err.Error()
}

// startsWithMagic reports whether the file at path begins with the segment
// magic (a truncated segment) rather than being some other short file.
func startsWithMagic(path string) bool {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, len(segment.Magic))
	_, err = io.ReadFull(f, b)
	return err == nil && string(b) == segment.Magic
}

// cause is the reason inside a segment error, without the operation and
// path that the caller shows already.
func cause(err error) string {
	var se *segment.Error
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	return err.Error()
}
