package main

// What ls and inspect report, as text and as JSON. The JSON objects are
// versioned (the "schema" field, reportSchema) and documented field by
// field in the package comment (main.go); a field is never renamed or
// given another meaning without a new schema number, and new fields may
// appear in any version.

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/segment"
)

// reportSchema is the version of the segment objects of ls --json and
// inspect --json.
const reportSchema = 1

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

// countsReport is segment.Counts: how many of the segment's mutexes (of
// those read: Scanned) are in each state.
type countsReport struct {
	Scanned        int `json:"scanned"`
	Free           int `json:"free"`
	Held           int `json:"held"`
	OwnerDied      int `json:"owner_died"`
	NotRecoverable int `json:"not_recoverable"`
	Inconsistent   int `json:"inconsistent"`
	Waiters        int `json:"waiters"`
}

// segmentReport is a segment as ls --json and inspect --json show it.
type segmentReport struct {
	Schema      int           `json:"schema"`
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
	Mutexes     []mutexReport `json:"mutexes"`            // inspect: all; ls: mutex 0 only
	Counts      countsReport  `json:"counts"`
	Error       string        `json:"error,omitempty"` // a damaged segment: why it cannot be read
	// Channel is an event channel's state (inspect only; omitted for a
	// plain segment): sequence, ring use, sleepers, each request slot with
	// its claimers and whether they live. Its fields are event.Stats's.
	Channel any `json:"channel,omitempty"`
}

// prober looks thread and user ids up, once each: a segment's header may
// claim 65537 mutexes, and /proc is read per distinct thread, never per
// mutex.
type prober struct {
	now   time.Time
	ownNS uint64
	tasks map[int]task
	users map[int]string
}

func newProber(now time.Time) *prober {
	return &prober{now: now, ownNS: ownPIDNamespace(), tasks: map[int]task{}, users: map[int]string{}}
}

func (p *prober) task(id int) task {
	t, ok := p.tasks[id]
	if !ok {
		t = lookupTask(id)
		p.tasks[id] = t
	}
	return t
}

func (p *prober) user(uid int) string {
	u, ok := p.users[uid]
	if !ok {
		u = userName(uid)
		p.users[uid] = u
	}
	return u
}

// header fills in what ls and inspect show about a segment's file and
// header, and says whether its TIDs belong to another PID namespace.
func (p *prober) header(r *segmentReport, name, path string, uid int, mode fs.FileMode, h segment.Header) (otherNS bool) {
	*r = segmentReport{
		Schema:      reportSchema,
		Name:        name,
		Path:        path,
		UID:         uid,
		User:        p.user(uid),
		Mode:        fmt.Sprintf("%04o", uint32(mode.Perm())),
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
		PIDNS:       h.PIDNamespace,
		Mutexes:     []mutexReport{},
	}
	if !h.Created.IsZero() {
		r.AgeSeconds = p.now.Sub(h.Created).Seconds()
	}
	if h.PIDNamespace != 0 && p.ownNS != 0 {
		same := h.PIDNamespace == p.ownNS
		r.SamePIDNS = &same
		otherNS = !same
	}
	switch {
	case h.CreatorPID == 0:
	case otherNS:
		r.Creator = task{ID: h.CreatorPID}
	default:
		r.Creator = p.task(h.CreatorPID)
	}
	return otherNS
}

// info is inspect's report: every mutex.
func (p *prober) info(info segment.Info) segmentReport {
	var r segmentReport
	other := p.header(&r, info.Name, info.Path, info.UID, info.Mode, info.Header)
	var c segment.Counts
	for i, st := range info.Mutexes {
		r.Mutexes = append(r.Mutexes, p.mutexState(i, st, other))
		c.Add(st)
	}
	r.Counts = counts(c)
	return r
}

// entry is ls's report: mutex 0 and the counts.
func (p *prober) entry(e segment.Entry) segmentReport {
	var r segmentReport
	other := p.header(&r, e.Name, e.Path, e.UID, e.Mode, e.Header)
	if e.Err != nil {
		r.Error = cause(e.Err)
	}
	if e.Counts.Scanned > 0 {
		r.Mutexes = append(r.Mutexes, p.mutexState(0, e.Lock, other))
	}
	r.Counts = counts(e.Counts)
	return r
}

func counts(c segment.Counts) countsReport {
	return countsReport{Scanned: c.Scanned, Free: c.Free, Held: c.Held, OwnerDied: c.OwnerDied,
		NotRecoverable: c.NotRecoverable, Inconsistent: c.Inconsistent, Waiters: c.Waiters}
}

// mutexState describes mutex i. TIDs are looked up in /proc unless they
// belong to another PID namespace, where this process cannot name them.
func (p *prober) mutexState(i int, st robustlock.State, otherNS bool) mutexReport {
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
		t := p.task(tid)
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
	if r.Error != "" {
		return "DAMAGED: " + r.Error
	}
	if len(r.Mutexes) == 0 {
		return "-"
	}
	s := shortState(r.Mutexes[0])
	busy := r.Counts.Scanned - r.Counts.Free
	if r.Mutexes[0].State != "free" {
		busy--
	}
	if busy > 0 {
		s += fmt.Sprintf(" (+%d other mutexes not free)", busy)
	}
	if r.Counts.Scanned < r.MutexCount {
		s += fmt.Sprintf(" (%d of %d mutexes read)", r.Counts.Scanned, r.MutexCount)
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
	ms := r.Mutexes
	for len(ms) > 0 {
		m := ms[0]
		// A run of idle mutexes alike (a segment may have 65537) is one
		// line, not a section each.
		if n := idleRun(ms); m.Index > 0 && n >= 3 {
			fmt.Fprintf(w, "\nmutexes %d to %d: free, no waiters, kind %d%s, %d users\n",
				m.Index, ms[n-1].Index, m.Kind, kindText(m.Kind), m.Users)
			ms = ms[n:]
			continue
		}
		ms = ms[1:]
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

// idleRun returns how many mutexes at the start of ms are free, without
// waiters or flags, and alike in kind and users.
func idleRun(ms []mutexReport) int {
	idle := func(m mutexReport) bool {
		return m.State == "free" && !m.Waiters && !m.OwnerDied && !m.Inconsistent && !m.NotRecoverable && m.PreviousOwner == nil
	}
	n := 0
	for n < len(ms) && idle(ms[n]) && ms[n].Kind == ms[0].Kind && ms[n].Users == ms[0].Users {
		n++
	}
	return n
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
