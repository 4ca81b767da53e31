package bench

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

func numCPU() int { return runtime.NumCPU() }

// describeMachine reads what the report's header needs from /proc, uname
// and glibc (gnu_get_libc_version under cgo, `ldd --version` otherwise).
func describeMachine() machine {
	m := machine{
		Cores:      runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Arch:       runtime.GOOS + "/" + runtime.GOARCH,
		Go:         runtime.Version(),
		Cgo:        HaveGlibc,
		LoadBefore: loadAvg(),
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "model name":
				if m.CPU == "" {
					m.CPU = strings.TrimSpace(v)
				}
			case "flags":
				m.VM = m.VM || strings.Contains(" "+v+" ", " hypervisor ")
			}
		}
		f.Close()
	}
	if m.CPU == "" {
		m.CPU = "unknown CPU"
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource"); err == nil {
		m.Clocksource = strings.TrimSpace(string(b))
	}
	if HaveGlibc {
		m.Glibc = glibcVersion()
	} else if out, err := exec.Command("ldd", "--version").Output(); err == nil {
		line, _, _ := bytes.Cut(out, []byte("\n"))
		if f := strings.Fields(string(line)); len(f) > 0 && strings.Contains(string(line), "GLIBC") {
			m.Glibc = f[len(f)-1] + " (ldd)"
		}
	}
	return m
}

// loadAvg is the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
