package etcdlock_test

// Test support: real etcd servers started by the tests themselves
// (go.etcd.io/etcd/server/v3/embed), on 127.0.0.1 with free ports and temp
// dirs, either in this process (single node) or as helper processes that
// a test can SIGKILL (the 3-node cluster); and helper processes, this test
// binary executed again, that hold locks and get killed or stopped.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/futexlab/robustlock/etcd/internal/etcdtest"
)

// helperEnv selects a helper role when this test binary is executed again.
const helperEnv = "ETCDLOCK_TEST_HELPER"

var helpers = map[string]func() int{
	"member":  helperMember,
	"worker":  helperWorker,
	"stopper": helperStopper,
}

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		f := helpers[role]
		if f == nil {
			fmt.Fprintf(os.Stderr, "unknown helper role %q\n", role)
			os.Exit(2)
		}
		os.Exit(f())
	}
	os.Exit(m.Run())
}

var (
	freePorts = etcdtest.FreePorts
	startNode = etcdtest.StartNode
	client    = etcdtest.Client
)

// proc is a helper process: the test binary run again in a role.
type proc struct {
	cmd   *exec.Cmd
	lines chan string // its stdout, a line at a time; closed at EOF
	done  chan struct{}
	err   error // Wait's result, once done is closed
	stdin io.WriteCloser
	mu    sync.Mutex
	out   []string
}

// spawn starts this test binary in role with env (KEY=VALUE). Its stdin
// is a pipe the helper watches: when the test ends, the pipe closes and
// the helper exits, so none outlives the test; cleanup also kills it.
func spawn(t testing.TB, role string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+role), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{}), stdin: stdin}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // nobody reads this helper's lines now; out keeps them
			}
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// expect returns the next line of p that starts with prefix, skipping
// others, or fails the test after timeout (a liveness bound).
func (p *proc) expect(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	l, err := p.next(prefix, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// next is expect returning an error instead of failing the test.
func (p *proc) next(prefix string, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				<-p.done
				return "", fmt.Errorf("helper %d exited (%v) before printing %q: %q", p.cmd.Process.Pid, p.err, prefix, p.output())
			}
			if strings.HasPrefix(l, prefix) {
				return l, nil
			}
		case <-deadline:
			return "", fmt.Errorf("helper %d printed no %q within %v", p.cmd.Process.Pid, prefix, timeout)
		}
	}
}

// output is what p has printed so far.
func (p *proc) output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.out...)
}

// watchStdin exits the helper when its parent closes the pipe (or dies).
func watchStdin() {
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
}

// helperMember runs one member of a cluster described by the environment
// until killed: ETCDLOCK_MEMBER (index), ETCDLOCK_PEERS, ETCDLOCK_CLIENTS
// (comma-separated ports), ETCDLOCK_DIR, ETCDLOCK_TOKEN.
func helperMember() int {
	watchStdin()
	var i int
	fmt.Sscan(os.Getenv("ETCDLOCK_MEMBER"), &i)
	ports := func(s string) (ps []int) {
		for _, f := range strings.Split(s, ",") {
			var p int
			fmt.Sscan(f, &p)
			ps = append(ps, p)
		}
		return ps
	}
	cfg := etcdtest.Config(i, ports(os.Getenv("ETCDLOCK_PEERS")), ports(os.Getenv("ETCDLOCK_CLIENTS")),
		os.Getenv("ETCDLOCK_DIR"), os.Getenv("ETCDLOCK_TOKEN"), 100, 1000)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	<-e.Server.ReadyNotify()
	fmt.Println("READY")
	err = <-e.Err()
	fmt.Println("ERR", err)
	return 1
}

// cluster is a 3-member etcd cluster, each member a helper process.
type cluster struct {
	members   []*proc
	endpoints []string
}

// startCluster starts a cluster of n member processes and waits until it
// serves. TTLs down to 2 s are allowed. A member that cannot bind its
// ports (taken by another process since freePorts) makes it start over on
// new ones.
func startCluster(t testing.TB, n int) *cluster {
	t.Helper()
	join := func(ps []int) string {
		var s []string
		for _, p := range ps {
			s = append(s, fmt.Sprint(p))
		}
		return strings.Join(s, ",")
	}
	for try := 0; ; try++ {
		ports := freePorts(t, 2*n)
		c := &cluster{}
		dir, token := t.TempDir(), fmt.Sprintf("t%d", time.Now().UnixNano())
		for i := range n {
			c.members = append(c.members, spawn(t, "member", fmt.Sprintf("ETCDLOCK_MEMBER=%d", i),
				"ETCDLOCK_PEERS="+join(ports[:n]), "ETCDLOCK_CLIENTS="+join(ports[n:]),
				"ETCDLOCK_DIR="+filepath.Join(dir, fmt.Sprint(i)), "ETCDLOCK_TOKEN="+token))
			c.endpoints = append(c.endpoints, fmt.Sprintf("127.0.0.1:%d", ports[n+i]))
		}
		var err error
		for _, m := range c.members {
			if _, err = m.next("READY", 120*time.Second); err != nil {
				break
			}
		}
		if err == nil {
			return c
		}
		for _, m := range c.members {
			m.cmd.Process.Kill()
			<-m.done
		}
		if try >= 2 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
}

// leader returns the index of the member that leads, asking each live one.
func (c *cluster) leader(t testing.TB, cli *clientv3.Client) int {
	t.Helper()
	for range 100 {
		for i, ep := range c.endpoints {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := cli.Status(ctx, ep)
			cancel()
			if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
				return i
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no leader found")
	return -1
}
