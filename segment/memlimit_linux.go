//go:build linux

package segment

// The memory cgroup check. A creator's fallocate charges every page of a
// tmpfs segment to the creator's memory cgroup; a segment larger than what
// the cgroup still allows does not fail the fallocate but gets the
// creator OOM-killed. So before allocating, create reads the limit and
// the usage of the creator's cgroup and of each of its ancestors (cgroup
// v2: memory.max and memory.current; v1: memory.limit_in_bytes and
// memory.usage_in_bytes) and refuses a segment that cannot fit. Usage
// counts reclaimable page cache too, which the kernel would drop before
// killing anyone, so that part of it (file pages that are not shmem, from
// memory.stat) is not counted as used.
//
// The check is advisory, and what it cannot see stays a risk: other
// processes of the cgroup allocating at the same time, swap (which can
// take tmpfs pages and make a larger segment fit: the check ignores it and
// may refuse one that would have fit with swap), kernel memory the
// creation itself needs, and a limit lowered later. Where no cgroup file
// can be read, nothing is checked, and segments under memCheckMin (1 MiB)
// are not checked at all.

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"path"
	"strconv"
	"strings"
)

// Where the check reads; tests point them at a fake tree.
var (
	procSelfCgroup = "/proc/self/cgroup"
	cgroupRoot     = "/sys/fs/cgroup"
)

// memCheckMin is the smallest segment checked: below it, a segment is a
// small allocation like any other (and the check, a few file reads per
// cgroup level, would cost more than building it).
const memCheckMin = 1 << 20

// checkMemoryLimit returns an ErrMemoryLimit error if size bytes do not
// fit in the caller's memory cgroup.
func checkMemoryLimit(size int64) error {
	if size < memCheckMin {
		return nil
	}
	room, where, ok := memoryRoom(size)
	if ok && size > room {
		return detail(ErrMemoryLimit, "%d bytes needed, memory cgroup %s has room for %d", size, where, max(room, 0))
	}
	return nil
}

// memoryRoom returns how many bytes the tightest memory cgroup on the
// caller's path still allows, and that cgroup's directory; ok is false
// when no limit could be read. Unlimited levels cost one read, and
// memory.stat (long, and slow to generate) is read only where size does
// not fit without counting reclaimable cache.
func memoryRoom(size int64) (room int64, where string, ok bool) {
	b, err := os.ReadFile(procSelfCgroup)
	if err != nil {
		return 0, "", false
	}
	room = math.MaxInt64
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		// hierarchy-ID:controllers:path
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || !strings.HasPrefix(f[2], "/") {
			continue
		}
		var dirs []string
		var limitF, usageF string
		switch {
		case f[0] == "0" && f[1] == "": // v2
			limitF, usageF = "memory.max", "memory.current"
			dirs = []string{cgroupRoot, path.Join(cgroupRoot, "unified")}
		case hasController(f[1], "memory"): // v1
			limitF, usageF = "memory.limit_in_bytes", "memory.usage_in_bytes"
			dirs = []string{path.Join(cgroupRoot, "memory"), path.Join(cgroupRoot, f[1])}
		default:
			continue
		}
		for _, root := range dirs {
			r, w, found := walkRoom(root, f[2], limitF, usageF, size)
			if found {
				if r < room {
					room, where = r, w
				}
				ok = true
				break
			}
		}
	}
	return room, where, ok
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// unlimited is where a limit counts as none (v1 writes 2^63 rounded down
// to a page, v2 "max").
const unlimited = 1 << 62

// walkRoom reads limit and usage in root+cg and each ancestor up to root,
// returning the smallest room. found is false if root+cg has neither.
func walkRoom(root, cg, limitF, usageF string, size int64) (room int64, where string, found bool) {
	room = math.MaxInt64
	for p := path.Clean(cg); ; p = path.Dir(p) {
		dir := path.Join(root, p)
		limit, okL := readInt(path.Join(dir, limitF))
		if okL {
			found = true
		}
		if okL && limit < unlimited {
			usage, _ := readInt(path.Join(dir, usageF))
			r := limit - max(usage, 0)
			if r < size {
				r = limit - max(usage-reclaimable(dir), 0)
			}
			if r < room {
				room, where = r, dir
			}
		}
		if p == "/" || p == "." {
			return room, where, found
		}
	}
}

// readInt reads a file holding one integer ("max" is unlimited).
func readInt(name string) (int64, bool) {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, false
	}
	s := string(bytes.TrimSpace(b))
	if s == "max" {
		return math.MaxInt64, true
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// reclaimable returns the page cache in dir's memory.stat that the kernel
// can drop under pressure: file pages that are not shmem (tmpfs and
// shared memory pages count as file but cannot be dropped without swap).
func reclaimable(dir string) int64 {
	f, err := os.Open(path.Join(dir, "memory.stat"))
	if err != nil {
		return 0
	}
	defer f.Close()
	vals := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			vals[k] = n
		}
	}
	file, shmem := vals["file"], vals["shmem"] // v2
	if _, v1 := vals["cache"]; v1 {
		file, shmem = vals["cache"], vals["shmem"]
		if t, ok := vals["total_cache"]; ok {
			file, shmem = t, vals["total_shmem"]
		}
	}
	return max(file-shmem, 0)
}
