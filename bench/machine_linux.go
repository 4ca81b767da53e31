package bench

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strconv"
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

// cpuMeter tells how much of the machine other processes used during the
// run: all CPU time the kernel counted as busy, less this process's and its
// workers' own. The load average cannot tell: the workers raise it too.
type cpuMeter struct {
	busy, own float64 // seconds
	wall      int64
}

func startCPUMeter() cpuMeter {
	return cpuMeter{busy: busySeconds(), own: ownSeconds(), wall: nanotime()}
}

// othersShare is the share (0..1) of all cores' time since start that
// processes other than this one and its children kept busy.
func (c cpuMeter) othersShare() float64 {
	busy, own := busySeconds()-c.busy, ownSeconds()-c.own
	wall := float64(nanotime()-c.wall) / 1e9 * float64(runtime.NumCPU())
	if wall <= 0 || busy < 0 {
		return 0
	}
	return max(0, min(1, (busy-own)/wall))
}

// busySeconds is the non-idle CPU time of all cores, from /proc/stat.
func busySeconds() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var busy float64
	for i, v := range f[1:] {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		busy += n
	}
	return busy / 100 // USER_HZ
}

// ownSeconds is the CPU time of this process and its waited-for children.
func ownSeconds() float64 {
	var t float64
	for _, who := range []int{unix.RUSAGE_SELF, unix.RUSAGE_CHILDREN} {
		var ru unix.Rusage
		if unix.Getrusage(who, &ru) == nil {
			t += float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
		}
	}
	return t
}
