package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/segment"
)

// task is what /proc says about a thread or process id.
type task struct {
	ID      int    `json:"id"`
	Known   bool   `json:"known"`             // /proc could be asked (false: other PID namespace, or no /proc)
	Alive   bool   `json:"alive"`             // the id exists and has not exited
	Zombie  bool   `json:"zombie,omitempty"`  // exited, not yet reaped by its parent
	PID     int    `json:"pid,omitempty"`     // the process a thread belongs to
	Process string `json:"process,omitempty"` // that process's name (comm)
}

// mutexReport is one mutex of a segment, as ls --json and inspect show it.
type mutexReport struct {
	Index          int    `json:"index"`
	State          string `json:"state"` // free, held, owner-died, recovering, not-recoverable
	Summary        string `json:"summary"`
	Owner          *task  `json:"owner,omitempty"`           // the thread in the lock word
	PreviousOwner  *task  `json:"previous_owner,omitempty"`  // owner died: the thread that held it
	Waiters        bool   `json:"waiters"`                   // a thread may be asleep on it
	OwnerDied      bool   `json:"owner_died"`                // holder died; the next locker recovers
	Inconsistent   bool   `json:"inconsistent"`              // being recovered: MarkConsistent not yet called
	NotRecoverable bool   `json:"not_recoverable"`           // unlocked while inconsistent
	Kind           int32  `json:"kind"`                      // glibc's __kind
	Users          uint32 `json:"users"`                     // glibc's __nusers
	OtherNamespace bool   `json:"other_namespace,omitempty"` // TIDs are another PID namespace's
}

// segmentReport is a segment as ls --json and inspect --json show it.
type segmentReport struct {
	Name        string        `json:"name"`
	Path        string        `json:"path"`
	UID         int           `json:"uid"`
	User        string        `json:"user,omitempty"`
	Mode        string        `json:"mode"`
	Size        int64         `json:"size"`
	Version     uint32        `json:"version"`
	WordSize    int           `json:"word_size"`
	MutexSize   int           `json:"mutex_size"`
	HeaderSize  int           `json:"header_size"`
	MutexCount  int           `json:"mutex_count"`
	MutexStride int           `json:"mutex_stride"`
	MutexOffset int64         `json:"mutex_offset"`
	DataOffset  int64         `json:"data_offset"`
	DataSize    int64         `json:"data_size"`
	Creator     task          `json:"creator"`
	Created     time.Time     `json:"created"`
	AgeSeconds  float64       `json:"age_seconds"`
	PIDNS       uint64        `json:"pid_namespace"`
	SamePIDNS   *bool         `json:"same_pid_namespace"` // null when unknown
	Mutexes     []mutexReport `json:"mutexes"`
}

func runLs(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("ls", "[-dir DIR] [--json] [DIR]", `
List the robustlock segments in a directory (default /dev/shm), like ipcs:
name, owner, permissions, size in bytes, number of mutexes, creator process,
age and the state of the segment's lock (mutex 0). Files that are not
segments are skipped.`, stdout, stderr)
	dir := fs.String("dir", segment.DefaultDir, "the `directory` to list")
	asJSON := fs.Bool("json", false, "print a JSON array, one object per segment (as inspect --json)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagError(stderr, "ls", err)
	}
	switch {
	case len(pos) > 1:
		return failf(stderr, exitUsage, "ls: want at most one DIR, got %d arguments (see 'robustlock ls -h')", len(pos))
	case len(pos) == 1:
		*dir = pos[0]
	}
	infos, err := segment.List(segment.Dir(*dir))
	if err != nil {
		return failf(stderr, exitFail, "ls: %s", explain(err, *dir))
	}
	now := time.Now()
	ns := ownPIDNamespace()
	reports := make([]segmentReport, 0, len(infos))
	for _, info := range infos {
		reports = append(reports, report(info, now, ns))
	}
	if *asJSON {
		return writeJSON(stdout, stderr, "ls", reports)
	}
	if len(reports) == 0 {
		fmt.Fprintf(stdout, "no robustlock segments in %s\n", *dir)
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tOWNER\tMODE\tSIZE\tMUTEXES\tCREATOR\tAGE\tLOCK")
	for _, r := range reports {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n",
			r.Name, ownerName(r), r.Mode, r.Size, r.MutexCount,
			creatorShort(r), age(now.Sub(r.Created)), lockShort(r))
	}
	tw.Flush()
	return exitOK
}

func runInspect(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("inspect", "[-dir DIR] [--json] NAME", `
Show a segment's header and the state of each of its mutexes, read without
locking anything: free or held, by which thread, whether that thread is
alive and which process it belongs to, waiters, owner died (the holder died
and the next locker will recover), inconsistent (being recovered) and not
recoverable. A file that is not a robustlock segment is refused.`, stdout, stderr)
	dir := fs.String("dir", segment.DefaultDir, "the `directory` that holds the segment")
	asJSON := fs.Bool("json", false, "print one JSON object")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagError(stderr, "inspect", err)
	}
	if len(pos) != 1 {
		return failf(stderr, exitUsage, "inspect: want one segment NAME, got %d arguments (see 'robustlock inspect -h')", len(pos))
	}
	name := pos[0]
	info, err := segment.Stat(name, segment.Dir(*dir))
	if err != nil {
		return failf(stderr, exitFail, "inspect %s: %s", name, explain(err, *dir))
	}
	now := time.Now()
	r := report(info, now, ownPIDNamespace())
	if *asJSON {
		return writeJSON(stdout, stderr, "inspect", r)
	}
	printInspect(stdout, r, now)
	return exitOK
}

func runRm(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("rm", "[-dir DIR] NAME...", `
Remove segments, like ipcrm. Only files that start with the segment magic are
removed; anything else is refused and left alone. Processes that have a
segment mapped keep using it until they close it; the name is free at once.`, stdout, stderr)
	dir := fs.String("dir", segment.DefaultDir, "the `directory` that holds the segments")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagError(stderr, "rm", err)
	}
	if len(pos) == 0 {
		return failf(stderr, exitUsage, "rm: want at least one segment NAME (see 'robustlock rm -h')")
	}
	status := exitOK
	for _, name := range pos {
		if err := segment.Remove(name, segment.Dir(*dir)); err != nil {
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
		errors.Is(err, segment.ErrVersion),
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

// report gathers what ls and inspect show about a segment.
func report(info segment.Info, now time.Time, ownNS uint64) segmentReport {
	h := info.Header
	r := segmentReport{
		Name:        info.Name,
		Path:        info.Path,
		UID:         info.UID,
		Mode:        fmt.Sprintf("%04o", uint32(info.Mode.Perm())),
		Size:        h.TotalSize,
		Version:     h.Version,
		WordSize:    h.WordSize,
		MutexSize:   h.MutexSize,
		HeaderSize:  h.HeaderSize,
		MutexCount:  h.MutexCount,
		MutexStride: h.MutexStride,
		MutexOffset: h.MutexOffset,
		DataOffset:  h.DataOffset,
		DataSize:    h.DataSize,
		Created:     h.Created,
		AgeSeconds:  now.Sub(h.Created).Seconds(),
		PIDNS:       h.PIDNamespace,
	}
	r.User = userName(info.UID)
	other := false
	if h.PIDNamespace != 0 && ownNS != 0 {
		same := h.PIDNamespace == ownNS
		r.SamePIDNS = &same
		other = !same
	}
	if other {
		r.Creator = task{ID: h.CreatorPID}
	} else {
		r.Creator = lookupTask(h.CreatorPID)
	}
	for i, st := range info.Mutexes {
		r.Mutexes = append(r.Mutexes, mutexState(info, i, st, other))
	}
	return r
}

// mutexState describes mutex i. TIDs are looked up in /proc unless they
// belong to another PID namespace, where this process cannot name them.
func mutexState(info segment.Info, i int, st robustlock.State, otherNS bool) mutexReport {
	m := mutexReport{
		Index:          i,
		Waiters:        st.Waiters,
		OwnerDied:      st.OwnerDied,
		Inconsistent:   st.Inconsistent,
		NotRecoverable: st.NotRecoverable,
		Kind:           st.Kind,
		Users:          st.Users,
		OtherNamespace: otherNS,
	}
	look := func(tid int) *task {
		if otherNS {
			return &task{ID: tid}
		}
		t := lookupTask(tid)
		return &t
	}
	switch {
	case st.NotRecoverable:
		m.State, m.Summary = "not-recoverable", "not recoverable (unlocked while inconsistent; unusable until re-initialised)"
	case st.OwnerDied:
		m.State, m.Summary = "owner-died", "owner died holding it; the next locker gets ErrOwnerDied and recovers"
		// The kernel clears the TID from the lock word but leaves glibc's
		// __owner field, which still names the thread that died.
		if tid := st.LastOwner; tid > 0 {
			m.PreviousOwner = look(tid)
			m.Summary = fmt.Sprintf("owner died holding it (tid %d, %s); the next locker gets ErrOwnerDied and recovers",
				tid, taskText(*m.PreviousOwner))
		}
	case st.Owner == 0:
		m.State, m.Summary = "free", "free"
	default:
		m.State = "held"
		if st.Inconsistent {
			m.State = "recovering"
		}
		m.Owner = look(st.Owner)
		m.Summary = fmt.Sprintf("held by tid %d (%s)", st.Owner, taskText(*m.Owner))
		if m.Owner.Known && !m.Owner.Alive {
			m.Summary += ": the owner is gone but the lock was not marked owner-died (stale)"
		}
		if st.Inconsistent {
			m.Summary += ", recovering: MarkConsistent not yet called"
		}
	}
	if st.Waiters {
		m.Summary += "; waiters"
	}
	return m
}

// taskText says in a few words what /proc knows of a thread.
func taskText(t task) string {
	switch {
	case !t.Known:
		return "cannot look it up here"
	case t.Zombie:
		return fmt.Sprintf("exited, thread of pid %d", t.PID)
	case !t.Alive:
		return "no such thread: dead"
	case t.PID == t.ID:
		return fmt.Sprintf("alive, main thread of pid %d %s", t.PID, t.Process)
	}
	return fmt.Sprintf("alive, thread of pid %d %s", t.PID, t.Process)
}

func ownerName(r segmentReport) string {
	if r.User != "" {
		return r.User
	}
	return strconv.Itoa(r.UID)
}

func creatorShort(r segmentReport) string {
	s := strconv.Itoa(r.Creator.ID)
	switch {
	case r.SamePIDNS != nil && !*r.SamePIDNS:
		return s + " (other ns)"
	case !r.Creator.Known:
		return s
	case r.Creator.Alive:
		return s + " (alive)"
	}
	return s + " (exited)"
}

// lockShort is ls's LOCK column: the segment lock's state, and how many
// of the other mutexes are not free.
func lockShort(r segmentReport) string {
	if len(r.Mutexes) == 0 {
		return "-"
	}
	s := shortState(r.Mutexes[0])
	busy := 0
	for _, m := range r.Mutexes[1:] {
		if m.State != "free" {
			busy++
		}
	}
	if busy > 0 {
		s += fmt.Sprintf(" (+%d other mutexes not free)", busy)
	}
	return s
}

func shortState(m mutexReport) string {
	var s string
	switch m.State {
	case "held", "recovering":
		s = fmt.Sprintf("held by tid %d", m.Owner.ID)
		switch {
		case m.Owner.Known && !m.Owner.Alive:
			s += " (dead!)"
		case m.Owner.Known:
			s += fmt.Sprintf(" (pid %d)", m.Owner.PID)
		}
		if m.State == "recovering" {
			s += ", recovering"
		}
	case "owner-died":
		s = "owner died"
	case "not-recoverable":
		s = "not recoverable"
	default:
		s = m.State
	}
	if m.Waiters {
		s += ", waiters"
	}
	return s
}

func printInspect(w io.Writer, r segmentReport, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "segment\t%s\n", r.Name)
	fmt.Fprintf(tw, "path\t%s\n", r.Path)
	fmt.Fprintf(tw, "owner\t%s (uid %d), mode %s\n", ownerName(r), r.UID, r.Mode)
	fmt.Fprintf(tw, "version\t%d (word size %d, mutex size %d)\n", r.Version, r.WordSize, r.MutexSize)
	fmt.Fprintf(tw, "size\t%d bytes: header %d, %d %s at %d (stride %d), data %d at %d\n",
		r.Size, r.HeaderSize, r.MutexCount, plural(r.MutexCount, "mutex", "mutexes"),
		r.MutexOffset, r.MutexStride, r.DataSize, r.DataOffset)
	creator := fmt.Sprintf("pid %d", r.Creator.ID)
	switch {
	case r.SamePIDNS != nil && !*r.SamePIDNS:
		creator += ", in another PID namespace (its TIDs cannot be looked up here)"
	case r.Creator.Known && r.Creator.Alive:
		creator += fmt.Sprintf(" (%s), alive", r.Creator.Process)
	case r.Creator.Known:
		creator += ", exited"
	}
	fmt.Fprintf(tw, "creator\t%s\n", creator)
	fmt.Fprintf(tw, "created\t%s (%s ago)\n", r.Created.Local().Format("2006-01-02 15:04:05.000 MST"), age(now.Sub(r.Created)))
	ns := "unknown"
	if r.PIDNS != 0 {
		ns = strconv.FormatUint(r.PIDNS, 10)
		if r.SamePIDNS != nil && *r.SamePIDNS {
			ns += " (this process's)"
		}
	}
	fmt.Fprintf(tw, "pid namespace\t%s\n", ns)
	tw.Flush()
	for _, m := range r.Mutexes {
		label := fmt.Sprintf("mutex %d", m.Index)
		if m.Index == 0 {
			label += " (segment lock)"
		}
		fmt.Fprintf(w, "\n%s: %s\n", label, m.Summary)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		owner := "none"
		if m.Owner != nil {
			owner = fmt.Sprintf("tid %d (%s)", m.Owner.ID, taskText(*m.Owner))
		} else if m.PreviousOwner != nil {
			owner = fmt.Sprintf("none; it was tid %d (%s)", m.PreviousOwner.ID, taskText(*m.PreviousOwner))
		}
		fmt.Fprintf(tw, "  owner\t%s\n", owner)
		fmt.Fprintf(tw, "  waiters\t%s\n", yesNo(m.Waiters))
		fmt.Fprintf(tw, "  owner died\t%s\n", yesNo(m.OwnerDied))
		fmt.Fprintf(tw, "  inconsistent\t%s\n", yesNo(m.Inconsistent))
		fmt.Fprintf(tw, "  not recoverable\t%s\n", yesNo(m.NotRecoverable))
		fmt.Fprintf(tw, "  kind\t%d%s\n", m.Kind, kindText(m.Kind))
		fmt.Fprintf(tw, "  users\t%d\n", m.Users)
		tw.Flush()
	}
}

func kindText(k int32) string {
	if k == robustlock.KindRobustNormal {
		return " (robust, process-shared, normal)"
	}
	return ""
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// age prints a duration the way ls -l users read ages: 42s, 3m05s, 2h10m, 4d03h.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

func writeJSON(stdout, stderr io.Writer, cmd string, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return failf(stderr, exitFail, "%s: %v", cmd, err)
	}
	return exitOK
}
