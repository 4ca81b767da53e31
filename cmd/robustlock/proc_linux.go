//go:build linux

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// procLookups counts lookupTask's calls, for tests that check /proc is
// read per thread, not per mutex.
var procLookups atomic.Int64

// lookupTask describes the thread or process id as /proc sees it: whether
// it exists, the process (thread group) it belongs to and that process's
// name. /proc/ID answers for thread ids as well as process ids, even though
// only the latter are listed.
func lookupTask(id int) task {
	procLookups.Add(1)
	t := task{ID: id}
	if id <= 0 {
		return t
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(id) + "/status")
	if err != nil {
		if _, err := os.Stat("/proc/self"); err == nil {
			t.Known = true // /proc works: the id does not exist
		}
		return t
	}
	t.Known = true
	t.Alive = true
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		val = bytes.TrimSpace(val)
		switch string(key) {
		case "Name":
			t.Process = string(val)
		case "Tgid":
			t.PID, _ = strconv.Atoi(string(val))
		case "State":
			// A zombie has exited; its id is only waiting to be reaped.
			if len(val) > 0 && (val[0] == 'Z' || val[0] == 'X') {
				t.Alive = false
				t.Zombie = true
			}
		}
	}
	return t
}

// ownPIDNamespace returns the inode of this process's PID namespace, as
// segment headers record it, or 0 if it cannot be read.
func ownPIDNamespace() uint64 {
	fi, err := os.Stat("/proc/self/ns/pid")
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// userName returns the login name of uid from /etc/passwd, or "" if it has
// none. It reads the file itself rather than through os/user, whose libc
// path would make this binary link cgo; NSS sources other than the file
// (LDAP, systemd-userdb) are not consulted, and ls then shows the number.
func userName(uid int) string {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return ""
	}
	want := strconv.Itoa(uid)
	for _, line := range strings.Split(string(b), "\n") {
		// name:password:uid:gid:gecos:home:shell
		f := strings.SplitN(line, ":", 4)
		if len(f) == 4 && f[2] == want && f[0] != "" && !strings.HasPrefix(f[0], "#") {
			return f[0]
		}
	}
	return ""
}

// otherMappers returns the processes other than this one that map the
// file this process maps at addr, found by the file's device and inode in
// /proc/PID/maps, and how many processes' maps could not be read (another
// user's, or /proc mounted with hidepid; processes in other PID namespaces
// are not listed at all). It fails if this process's own mapping cannot be
// found.
func otherMappers(addr uintptr) (users []task, unchecked int, err error) {
	own, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, 0, err
	}
	key, ok := mappingAt(own, addr)
	if !ok {
		return nil, 0, fmt.Errorf("no mapping at %#x in /proc/self/maps", addr)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, 0, err
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/maps")
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH):
			continue // exited meanwhile
		case err != nil:
			unchecked++
			continue
		}
		if mapsFile(b, key) {
			users = append(users, lookupTask(pid))
		}
	}
	return users, unchecked, nil
}

// mappingAt returns the "device inode" fields of the line of maps whose
// address range holds addr.
func mappingAt(maps []byte, addr uintptr) (string, bool) {
	for _, line := range bytes.Split(maps, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) < 5 {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		l, err1 := strconv.ParseUint(lo, 16, 64)
		h, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil && uint64(addr) >= l && uint64(addr) < h && f[4] != "0" {
			return f[3] + " " + f[4], true
		}
	}
	return "", false
}

// mapsFile reports whether maps has a mapping of the file key ("device
// inode", as mappingAt returns it).
func mapsFile(maps []byte, key string) bool {
	dev, ino, _ := strings.Cut(key, " ")
	for _, line := range bytes.Split(maps, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) >= 5 && f[3] == dev && f[4] == ino {
			return true
		}
	}
	return false
}
