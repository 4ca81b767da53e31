//go:build linux

package event

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/futexlab/robustlock/internal/proctest"
)

// Helper processes: the test binary run again through proctest, each kind
// configured by EVENT_* variables in its environment.
var helpers = map[string]proctest.Helper{}

func init() {
	for _, kind := range []string{"pub", "sub", "nosyscall", "pub-die", "publish-one", "server", "requester", "req-die"} {
		helpers[kind] = func([]string) int { return runHelper(kind) }
	}
}

func TestMain(m *testing.M) { os.Exit(proctest.Main(m, helpers)) }

// helperCommand is the command that runs helper kind on channel name in dir,
// with extra "NAME=value" environment entries.
func helperCommand(dir, name, kind string, extra ...string) *exec.Cmd {
	cmd := proctest.Command(kind)
	cmd.Env = append(append(cmd.Env, "EVENT_DIR="+dir, "EVENT_NAME="+name), extra...)
	return cmd
}

func helper(t testing.TB, dir, name, kind string, extra ...string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, kind, helperCommand(dir, name, kind, extra...))
}

// launch is helper without the test's cleanup: for processes a chaos loop
// kills and replaces.
func launch(t testing.TB, dir, name, kind string, extra ...string) *proctest.Proc {
	t.Helper()
	p, err := proctest.Launch(t, kind, helperCommand(dir, name, kind, extra...))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A chaos message: pid, the publisher's own counter, payload, CRC-32 of
// all that.
func chaosMessage(buf []byte, pid int, k uint64, r *rand.Rand) []byte {
	n := 16 + r.IntN(100)
	buf = buf[:n+4]
	binary.LittleEndian.PutUint32(buf[0:], uint32(pid))
	binary.LittleEndian.PutUint64(buf[4:], k)
	for i := 12; i < n; i++ {
		buf[i] = byte(r.Uint32())
	}
	binary.LittleEndian.PutUint32(buf[n:], crc32.ChecksumIEEE(buf[:n]))
	return buf
}

func checkMessage(m []byte) (pid int, k uint64, ok bool) {
	if len(m) < 20 {
		return 0, 0, false
	}
	n := len(m) - 4
	if crc32.ChecksumIEEE(m[:n]) != binary.LittleEndian.Uint32(m[n:]) {
		return 0, 0, false
	}
	return int(binary.LittleEndian.Uint32(m[0:])), binary.LittleEndian.Uint64(m[4:]), true
}

func runHelper(kind string) int {
	dir, name := os.Getenv("EVENT_DIR"), os.Getenv("EVENT_NAME")
	c, err := Open(name, Dir(dir), OpenOnly())
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 1
	}
	ctx := context.Background()
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...); out.Flush() }
	switch kind {
	case "pub": // publish chaos messages in bursts until killed
		r := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
		buf := make([]byte, 256)
		say("ready")
		seen := c.recoveries.Load()
		for k := uint64(0); ; k++ {
			if err := c.Publish(chaosMessage(buf, os.Getpid(), k, r)); err != nil {
				fmt.Fprintln(os.Stderr, "publish:", err)
				return 1
			}
			if n := c.recoveries.Load(); n != seen {
				seen = n
				say("recovered")
			}
			if k%64 == 63 && os.Getenv("EVENT_TIGHT") == "" {
				time.Sleep(time.Duration(r.IntN(500)) * time.Microsecond)
			}
		}
	case "sub": // read until STOP; report counts and violations
		s, _ := c.Subscribe()
		start := s.Seq()
		say("ready")
		var recv, missed, badn uint64
		last := map[int]uint64{}
		first := map[int]uint64{}
		var firstBad string
		buf := make([]byte, 0, c.MaxMessage())
		for {
			m, err := s.NextInto(ctx, buf)
			var lap *LappedError
			if errors.As(err, &lap) {
				missed += lap.Missed
				continue
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "next:", err)
				return 1
			}
			if string(m) == "STOP" {
				break
			}
			recv++
			pid, k, ok := checkMessage(m)
			switch {
			case !ok:
				badn++
				if firstBad == "" {
					firstBad = fmt.Sprintf("torn message %x", m)
				}
			case !hasKey(first, pid):
				first[pid], last[pid] = k, k
			case k <= last[pid]:
				badn++
				if firstBad == "" {
					firstBad = fmt.Sprintf("pid %d counter %d after %d", pid, k, last[pid])
				}
			default:
				if k != last[pid]+1 && missed == 0 && firstBad == "" {
					firstBad = fmt.Sprintf("gap without a lap: pid %d counter %d after %d", pid, k, last[pid])
					badn++
				}
				last[pid] = k
			}
		}
		contiguous := 0
		for pid := range first {
			if first[pid] == 0 {
				contiguous++
			}
		}
		if firstBad != "" {
			fmt.Fprintln(os.Stderr, "first violation:", firstBad)
		}
		say("result %d %d %d %d %d %d", recv, missed, badn, start, s.Seq()-1, len(first))
		return 0
	case "nosyscall":
		return noSyscallPublish(c)
	case "pub-die":
		return pubDie(c, say)
	case "req-die":
		return reqDie(c, say)
	case "publish-one":
		if err := c.Publish([]byte("wake")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		say("done")
		return 0
	case "server": // echo, or hold what it takes when EVENT_HOLD is set
		hold := os.Getenv("EVENT_HOLD") != ""
		r := rand.New(rand.NewPCG(uint64(os.Getpid()), 7))
		say("ready")
		for {
			req, err := c.NextRequest(ctx)
			if err != nil {
				fmt.Fprintln(os.Stderr, "next request:", err)
				return 1
			}
			if hold {
				say("took %s", req.Data())
				select {}
			}
			if r.IntN(4) == 0 {
				time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
			}
			req.Respond(append([]byte("re:"), req.Data()...))
		}
	case "requester": // EVENT_N requests (0: forever); a line per outcome
		n, _ := strconv.Atoi(os.Getenv("EVENT_N"))
		say("ready")
		for i := 0; n == 0 || i < n; i++ {
			msg := fmt.Sprintf("%d-%d", os.Getpid(), i)
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			got, err := c.Request(rctx, []byte(msg))
			cancel()
			switch {
			case err == nil && string(got) == "re:"+msg:
				say("ok")
			case err == nil:
				say("wrong %q for %q", got, msg)
			case errors.Is(err, ErrServerDied):
				say("died")
			case errors.Is(err, context.DeadlineExceeded):
				say("timeout")
			default:
				say("error %v", err)
			}
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown helper", kind)
	return 2
}

func hasKey(m map[int]uint64, k int) bool { _, ok := m[k]; return ok }

func fields(t testing.TB, line, prefix string, n int) []uint64 {
	t.Helper()
	f := strings.Fields(line)
	if len(f) != n+1 || f[0] != prefix {
		t.Fatalf("line %q, want %s and %d numbers", line, prefix, n)
	}
	out := make([]uint64, n)
	for i := range out {
		v, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out[i] = v
	}
	return out
}

// pubDie publishes EVENT_GOOD messages, then stops inside the next Publish
// at stage EVENT_STAGE and waits there to be killed.
func pubDie(c *Channel, say func(string, ...any)) int {
	good, _ := strconv.Atoi(os.Getenv("EVENT_GOOD"))
	stage, _ := strconv.Atoi(os.Getenv("EVENT_STAGE"))
	for i := 0; i < good; i++ {
		c.Publish([]byte(fmt.Sprint("good", i)))
	}
	if os.Getenv("EVENT_WAITGO") != "" { // let the test put a subscriber to sleep first
		say("waiting")
		if l, _ := bufio.NewReader(os.Stdin).ReadString('\n'); l != "go\n" {
			return 1
		}
	}
	publishHook = func(s int) {
		if s == stage {
			say("at %d", s)
			select {}
		}
	}
	c.Publish([]byte("partial-partial-partial"))
	return 1
}
