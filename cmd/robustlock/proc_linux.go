//go:build linux

package main

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lookupTask describes the thread or process id as /proc sees it: whether
// it exists, the process (thread group) it belongs to and that process's
// name. /proc/ID answers for thread ids as well as process ids, even though
// only the latter are listed.
func lookupTask(id int) task {
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
