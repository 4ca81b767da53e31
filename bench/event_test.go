//go:build linux

package bench

// Event channels beside what a Go program would otherwise use between two
// processes: `go test -bench Event` in this module. Every contender is a
// round trip (or a fan-out) between this process and a peer process (this
// test binary, re-executed with eventPeerEnv set); figures are only
// compared with each other, as ratios, in one run.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock/event"
	"github.com/futexlab/robustlock/internal/futex"
)

const eventPeerEnv = "ROBUSTLOCK_EVENT_PEER"

func init() {
	if kind := os.Getenv(eventPeerEnv); kind != "" {
		if err := eventPeer(kind, os.Getenv("ROBUSTLOCK_EVENT_ARG")); err != nil {
			fmt.Fprintln(os.Stderr, "peer:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

const msgLen = 64

// startPeer runs the peer kind with arg and waits for its "ready".
func startPeer(b testing.TB, kind, arg string) *exec.Cmd {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), eventPeerEnv+"="+kind, "ROBUSTLOCK_EVENT_ARG="+arg)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		b.Fatalf("peer %s: %q %v", kind, line, err)
	}
	return cmd
}

func eventPeer(kind, arg string) error {
	ready := func() { os.Stdout.WriteString("ready\n") }
	buf := make([]byte, msgLen)
	switch kind {
	case "futex":
		mem, err := mapFile(arg)
		if err != nil {
			return err
		}
		w := (*uint32)(unsafe.Pointer(&mem[0]))
		ready()
		for {
			if v := atomic.LoadUint32(w); v != 1 {
				futex.Wait(w, v)
				continue
			}
			atomic.StoreUint32(w, 2)
			futex.Wake(w, 1)
		}
	case "unix-stream":
		l, err := net.Listen("unix", arg)
		if err != nil {
			return err
		}
		ready()
		c, err := l.Accept()
		if err != nil {
			return err
		}
		for {
			if _, err := ioReadFull(c, buf); err != nil {
				return nil
			}
			c.Write(buf)
		}
	case "unix-dgram":
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: arg, Net: "unixgram"})
		if err != nil {
			return err
		}
		ready()
		for {
			n, from, err := c.ReadFromUnix(buf)
			if err != nil {
				return err
			}
			c.WriteToUnix(buf[:n], from)
		}
	case "pipe": // stdin to stdout, after the ready line
		ready()
		for {
			if _, err := ioReadFull(os.Stdin, buf); err != nil {
				return nil
			}
			os.Stdout.Write(buf)
		}
	case "mqueue":
		req, err := mqOpen(arg+"-req", false)
		if err != nil {
			return err
		}
		resp, err := mqOpen(arg+"-resp", false)
		if err != nil {
			return err
		}
		ready()
		for {
			n, err := mqReceive(req, buf)
			if err != nil {
				return err
			}
			if err := mqSend(resp, buf[:n]); err != nil {
				return err
			}
		}
	case "event-serve":
		c, err := event.Open("rr", event.Dir(arg), event.OpenOnly())
		if err != nil {
			return err
		}
		ready()
		for {
			r, err := c.NextRequest(context.Background())
			if err != nil {
				return err
			}
			r.Respond(r.Data())
		}
	case "event-echo": // subscribe to ping, publish on pong
		ping, err := event.Open("ping", event.Dir(arg), event.OpenOnly())
		if err != nil {
			return err
		}
		pong, err := event.Open("pong", event.Dir(arg), event.OpenOnly())
		if err != nil {
			return err
		}
		s, _ := ping.Subscribe()
		ready()
		for {
			m, err := s.NextInto(context.Background(), buf)
			if err != nil {
				return err
			}
			pong.Publish(m)
		}
	case "event-count", "unix-count": // fan-out subscribers: count until a 1-byte STOP, print the count
		var n uint64
		if kind == "event-count" {
			c, err := event.Open("fan", event.Dir(arg), event.OpenOnly())
			if err != nil {
				return err
			}
			s, _ := c.Subscribe()
			ready()
			for {
				m, err := s.NextInto(context.Background(), buf)
				if err != nil {
					continue // lapped: counted as not delivered
				}
				if len(m) == 1 {
					break
				}
				n++
			}
		} else {
			c, err := net.Dial("unix", arg)
			if err != nil {
				return err
			}
			ready()
			for {
				if _, err := ioReadFull(c, buf); err != nil {
					return err
				}
				if buf[0] == 0xff {
					break
				}
				n++
			}
		}
		fmt.Println(n)
		return nil
	}
	return fmt.Errorf("unknown peer %q", kind)
}

func ioReadFull(f interface{ Read([]byte) (int, error) }, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := f.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func mapFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

// POSIX message queues through raw syscalls (mq_open takes the name
// without glibc's leading slash).
type mqAttr struct {
	flags, maxmsg, msgsize, curmsgs int64
	_                               [4]int64
}

func mqOpen(name string, create bool) (int, error) {
	p, _ := unix.BytePtrFromString(name)
	flags := unix.O_RDWR
	attr := mqAttr{maxmsg: 8, msgsize: msgLen}
	if create {
		flags |= unix.O_CREAT | unix.O_EXCL
	}
	fd, _, e := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)), uintptr(flags), 0o600, uintptr(unsafe.Pointer(&attr)), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

func mqSend(fd int, b []byte) error {
	for {
		_, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
		if e != syscall.EINTR {
			return errnoOrNil(e)
		}
	}
}

func mqReceive(fd int, b []byte) (int, error) {
	for {
		n, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
		if e != syscall.EINTR {
			return int(n), errnoOrNil(e)
		}
	}
}

func errnoOrNil(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func mqUnlink(name string) {
	p, _ := unix.BytePtrFromString(name)
	unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0)
}

// A round-trip contender: setup starts its peer and returns one 64-byte
// round trip.
type roundTrip struct {
	name  string
	setup func(b testing.TB) func()
}

var roundTrips = []roundTrip{
	{"futex ping-pong (floor)", func(b testing.TB) func() {
		path := filepath.Join(b.TempDir(), "word")
		os.WriteFile(path, make([]byte, 4096), 0o600)
		mem, err := mapFile(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { unix.Munmap(mem) })
		w := (*uint32)(unsafe.Pointer(&mem[0]))
		startPeer(b, "futex", path)
		return func() {
			atomic.StoreUint32(w, 1)
			futex.Wake(w, 1)
			for atomic.LoadUint32(w) != 2 {
				futex.Wait(w, 1)
			}
		}
	}},
	{"unix stream (net)", func(b testing.TB) func() {
		path := filepath.Join(b.TempDir(), "s")
		startPeer(b, "unix-stream", path)
		c, err := net.Dial("unix", path)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		msg, buf := make([]byte, msgLen), make([]byte, msgLen)
		return func() { c.Write(msg); ioReadFull(c, buf) }
	}},
	{"unix datagram (net)", func(b testing.TB) func() {
		dir := b.TempDir()
		path := filepath.Join(dir, "d")
		startPeer(b, "unix-dgram", path)
		c, err := net.DialUnix("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "me"), Net: "unixgram"},
			&net.UnixAddr{Name: path, Net: "unixgram"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		msg, buf := make([]byte, msgLen), make([]byte, msgLen)
		return func() { c.Write(msg); c.Read(buf) }
	}},
	{"pipe", func(b testing.TB) func() {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), eventPeerEnv+"=pipe")
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		ready := make([]byte, 6)
		ioReadFull(out, ready)
		msg, buf := make([]byte, msgLen), make([]byte, msgLen)
		return func() { in.Write(msg); ioReadFull(out, buf) }
	}},
	{"POSIX mqueue", func(b testing.TB) func() {
		name := "robustlock-bench-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		req, err := mqOpen(name+"-req", true)
		if err != nil {
			b.Skip("mq_open:", err)
		}
		resp, err := mqOpen(name+"-resp", true)
		if err != nil {
			b.Skip("mq_open:", err)
		}
		b.Cleanup(func() { mqUnlink(name + "-req"); mqUnlink(name + "-resp"); unix.Close(req); unix.Close(resp) })
		startPeer(b, "mqueue", name)
		msg, buf := make([]byte, msgLen), make([]byte, msgLen)
		return func() { mqSend(req, msg); mqReceive(resp, buf) }
	}},
	{"event Request/Respond", func(b testing.TB) func() {
		dir := b.TempDir()
		c, err := event.Open("rr", event.Dir(dir), event.MaxMessage(msgLen))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		startPeer(b, "event-serve", dir)
		msg := make([]byte, msgLen)
		return func() {
			if _, err := c.Request(context.Background(), msg); err != nil {
				b.Fatal(err)
			}
		}
	}},
	{"event Publish to a sleeping subscriber, and back", func(b testing.TB) func() {
		dir := b.TempDir()
		ping, err := event.Open("ping", event.Dir(dir), event.MaxMessage(msgLen))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ping.Close() })
		pong, err := event.Open("pong", event.Dir(dir), event.MaxMessage(msgLen))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { pong.Close() })
		s, _ := pong.Subscribe()
		startPeer(b, "event-echo", dir)
		msg, buf := make([]byte, msgLen), make([]byte, msgLen)
		return func() {
			ping.Publish(msg)
			if _, err := s.NextInto(context.Background(), buf); err != nil {
				b.Fatal(err)
			}
		}
	}},
}

// BenchmarkEventRoundTrip: one 64-byte message there and back per op,
// between two processes.
func BenchmarkEventRoundTrip(b *testing.B) {
	for _, c := range roundTrips {
		b.Run(strings.ReplaceAll(c.name, "/", "+"), func(b *testing.B) {
			rt := c.setup(b)
			rt()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rt()
			}
		})
	}
}

const fanSubs = 4

// fanout publishes n 64-byte messages to fanSubs subscriber processes and
// returns the messages delivered (summed over subscribers) per second.
func fanout(b testing.TB, kind string, n int) float64 {
	msg := make([]byte, msgLen)
	var peers []*bufio.Reader
	var send func()
	var stop func()
	switch kind {
	case "event":
		dir := b.TempDir()
		c, err := event.Open("fan", event.Dir(dir), event.MaxMessage(msgLen), event.Capacity(4096))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		for i := 0; i < fanSubs; i++ {
			peers = append(peers, startCounter(b, "event-count", dir))
		}
		send = func() { c.Publish(msg) }
		stop = func() { c.Publish([]byte{1}) }
	case "unix":
		path := filepath.Join(b.TempDir(), "fan")
		l, err := net.Listen("unix", path)
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		var conns []net.Conn
		for i := 0; i < fanSubs; i++ {
			peers = append(peers, startCounter(b, "unix-count", path))
			c, err := l.Accept()
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			conns = append(conns, c)
		}
		send = func() {
			for _, c := range conns {
				c.Write(msg)
			}
		}
		stop = func() {
			end := make([]byte, msgLen)
			end[0] = 0xff
			for _, c := range conns {
				c.Write(end)
			}
		}
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		send()
	}
	stop()
	var total uint64
	for _, r := range peers {
		line, err := r.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		v, _ := strconv.ParseUint(line[:len(line)-1], 10, 64)
		total += v
	}
	return float64(total) / time.Since(start).Seconds()
}

// BenchmarkEventFanout: one publisher, 4 subscriber processes, 64-byte
// messages; delivered messages per second, summed over the subscribers
// (Unix sockets send each message 4 times).
func BenchmarkEventFanout(b *testing.B) {
	for _, kind := range []string{"event", "unix"} {
		b.Run(kind, func(b *testing.B) {
			b.ReportMetric(fanout(b, kind, max(b.N, 1000)), "delivered/s")
		})
	}
}

// TestEventSpeedTable runs every contender in interleaved rounds (so that
// a loaded machine weighs on all of them alike) and prints the median of
// the rounds, with the ratios. It runs only when
// ROBUSTLOCK_EVENT_TABLE names the file to write the table to ("-" for the
// log only).
func TestEventSpeedTable(t *testing.T) {
	out := os.Getenv("ROBUSTLOCK_EVENT_TABLE")
	if out == "" {
		t.Skip("set ROBUSTLOCK_EVENT_TABLE=FILE (or -) to run")
	}
	const rounds, perRound = 15, 2000
	rts := make([]func(), len(roundTrips))
	for i, c := range roundTrips {
		rts[i] = c.setup(t)
		rts[i]()
	}
	ns := make([][]float64, len(roundTrips))
	fan := map[string][]float64{}
	for r := 0; r < rounds; r++ {
		for i, rt := range rts {
			start := time.Now()
			for j := 0; j < perRound; j++ {
				rt()
			}
			ns[i] = append(ns[i], float64(time.Since(start).Nanoseconds())/perRound)
		}
		if r%3 == 0 {
			for _, k := range []string{"event", "unix"} {
				fan[k] = append(fan[k], fanout(t, k, 20000))
			}
		}
	}
	med := func(v []float64) float64 {
		s := append([]float64(nil), v...)
		for i := range s {
			for j := i + 1; j < len(s); j++ {
				if s[j] < s[i] {
					s[i], s[j] = s[j], s[i]
				}
			}
		}
		return s[len(s)/2]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Event channels, %d rounds of %d round trips (64 bytes) between two processes; median per round.\n\n", rounds, perRound)
	fmt.Fprintf(&b, "| contender | round trip | vs futex floor | vs unix stream | vs unix datagram |\n|---|---:|---:|---:|---:|\n")
	floor, stream, dgram := med(ns[0]), med(ns[1]), med(ns[2])
	for i, c := range roundTrips {
		m := med(ns[i])
		fmt.Fprintf(&b, "| %s | %.1f µs | %.2fx | %.2fx | %.2fx |\n", c.name, m/1000, m/floor, m/stream, m/dgram)
	}
	fe, fu := med(fan["event"]), med(fan["unix"])
	fmt.Fprintf(&b, "\nFan-out, 1 publisher to %d subscriber processes, 64-byte messages, delivered messages/s (median of %d runs):\n\n", fanSubs, len(fan["event"]))
	fmt.Fprintf(&b, "| contender | delivered/s | ratio |\n|---|---:|---:|\n| event Publish | %.0f | %.2fx |\n| unix stream, each message sent %d times | %.0f | 1.00x |\n", fe, fe/fu, fanSubs, fu)
	rr, pub := med(ns[5]), med(ns[6])
	fmt.Fprintf(&b, "\nTargets: Request/Respond %.2fx the futex floor (<= 1.5x), %.2fx a unix stream round trip (<= 0.3x); "+
		"publish to a sleeping subscriber and back %.2fx a unix datagram round trip (<= 0.3x); fan-out %.2fx unix sockets (>= 4x).\n",
		rr/floor, rr/stream, pub/dgram, fe/fu)
	t.Log("\n" + b.String())
	if out != "-" {
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		var names []string
		var meds []float64
		for i, c := range roundTrips {
			names = append(names, c.name)
			meds = append(meds, med(ns[i])/1000)
		}
		svg := strings.TrimSuffix(out, filepath.Ext(out)) + ".svg"
		if err := os.WriteFile(svg, barChart("Round trip between two processes, 64 bytes (µs, median; shorter is better)", names, meds), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// barChart draws horizontal bars as a small self-contained SVG.
func barChart(title string, names []string, vals []float64) []byte {
	const left, width, bar, gap = 330, 420, 22, 8
	top := 40
	h := top + len(names)*(bar+gap) + 20
	hi := 0.0
	for _, v := range vals {
		hi = max(hi, v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="13">`+"\n", left+width+80, h)
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", title)
	for i, n := range names {
		y := top + i*(bar+gap)
		w := int(float64(width) * vals[i] / hi)
		color := "#8da0cb"
		if strings.HasPrefix(n, "event") {
			color = "#fc8d62"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+bar-6, n)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", left, y, max(w, 1), bar, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%.1f</text>`+"\n", left+w+6, y+bar-6, vals[i])
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// startCounter starts a fan-out subscriber and waits for its "ready"
// (given once it is subscribed, or connected); its count follows at STOP.
func startCounter(b testing.TB, kind, arg string) *bufio.Reader {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), eventPeerEnv+"="+kind, "ROBUSTLOCK_EVENT_ARG="+arg)
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("peer %s: %q %v", kind, line, err)
	}
	return r
}
