// Command robustlock-etcd holds an etcdlock lock across a command and
// inspects locks, like etcdctl lock, but with robustlock's recovery
// contract. robustlock etcd ... runs it.
//
// Usage:
//
//	robustlock-etcd lock [flags] NAME -- CMD [ARG...]
//	robustlock-etcd inspect [flags] [--json] NAME
//	robustlock-etcd reset [flags] NAME
//
// lock takes the lock NAME (waiting for it, or with -try failing at once
// if it is held), runs CMD while holding it and releases it when CMD
// exits; the exit status is CMD's. CMD's environment has
// ROBUSTLOCK_FENCE, the acquisition's fencing token, and ROBUSTLOCK_KEY,
// the lock's owner key (an etcd write guarded by "create revision of
// ROBUSTLOCK_KEY = ROBUSTLOCK_FENCE" is refused once the lock is lost). If
// the previous holder died holding the lock, CMD also gets
// ROBUSTLOCK_OWNER_DIED=1 and ROBUSTLOCK_DEAD_OWNER (its identity): CMD is
// the repair. If it exits 0 the lock is marked consistent and released;
// if it fails, the lock is dropped without a release, so the next holder
// is told of the death again. If the lock's lease is lost while CMD runs
// (the cluster unreachable past the TTL), CMD gets SIGTERM (SIGKILL 10 s
// later) and lock exits 1.
//
// inspect shows a lock without taking it: state (free, held, owner died,
// inconsistent, not recoverable), holder, lease and its TTL left as the
// server counts it, fence, consistency, recovered deaths. reset makes a
// lock nobody holds free and consistent again, the way back from not
// recoverable.
//
// Every subcommand takes -endpoints (default $ETCDCTL_ENDPOINTS, else
// 127.0.0.1:2379), -prefix and -timeout.
//
// Exit status: lock: CMD's, or 1 when the lock could not be taken or was
// lost; otherwise 0 on success, 1 on failure, 2 for a usage error, 130
// when interrupted before CMD started.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/futexlab/robustlock"
	etcdlock "github.com/futexlab/robustlock/etcd"
)

const (
	exitOK          = 0
	exitFail        = 1
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  robustlock-etcd lock [flags] NAME -- CMD [ARG...]   hold the lock NAME while CMD runs
  robustlock-etcd inspect [flags] [--json] NAME      show the lock's holder, lease, TTL left, consistency
  robustlock-etcd reset [flags] NAME                 make a lock nobody holds free and consistent again
run a subcommand with -h for its flags
`)
}

// run runs the subcommand in args[0] and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "lock":
		return runLock(args[1:], stdin, stdout, stderr)
	case "inspect":
		return runInspect(args[1:], stdout, stderr)
	case "reset":
		return runReset(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	}
	usage(stderr)
	return failf(stderr, exitUsage, "unknown command %q", args[0])
}

func failf(w io.Writer, code int, format string, args ...any) int {
	fmt.Fprintf(w, "robustlock etcd: "+format+"\n", args...)
	return code
}

// common are the flags every subcommand takes.
type common struct {
	endpoints string
	prefix    string
	timeout   time.Duration
}

func (c *common) register(fs *flag.FlagSet) {
	def := os.Getenv("ETCDCTL_ENDPOINTS")
	if def == "" {
		def = "127.0.0.1:2379"
	}
	fs.StringVar(&c.endpoints, "endpoints", def, "comma-separated etcd client endpoints")
	fs.StringVar(&c.prefix, "prefix", etcdlock.DefaultPrefix, "key prefix of the locks")
	fs.DurationVar(&c.timeout, "timeout", 0, "give up after this long (0: wait for the lock; 10s for other calls)")
}

func (c *common) client() (*clientv3.Client, error) {
	var eps []string
	for _, e := range strings.Split(c.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 {
		return nil, errors.New("no endpoints")
	}
	return clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

// parse parses fs and returns the one lock name and what follows "--".
func parse(fs *flag.FlagSet, args []string, stderr io.Writer, wantCmd bool) (name string, cmd []string, code int) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", nil, exitOK
		}
		return "", nil, exitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return "", nil, failf(stderr, exitUsage, "%s: missing lock NAME", fs.Name())
	}
	name, rest = rest[0], rest[1:]
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	switch {
	case wantCmd && len(rest) == 0:
		return "", nil, failf(stderr, exitUsage, "%s: missing CMD after NAME --", fs.Name())
	case !wantCmd && len(rest) > 0:
		return "", nil, failf(stderr, exitUsage, "%s: unexpected arguments %q", fs.Name(), rest)
	}
	return name, rest, -1
}

func runLock(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if _, ok := stderr.(*os.File); !ok {
		// CMD's stderr is then copied in by a goroutine of os/exec while
		// this function reports on the lock: serialise the writes. (An
		// *os.File is handed to CMD as it is, so a terminal stays one.)
		stderr = &syncWriter{w: stderr}
	}
	fs := flag.NewFlagSet("lock", flag.ContinueOnError)
	var c common
	c.register(fs)
	ttl := fs.Int("ttl", etcdlock.DefaultTTL, "lease TTL in seconds: how soon a dead holder is detected")
	try := fs.Bool("try", false, "fail at once if the lock is held")
	id := fs.String("id", "", "holder identity shown by inspect (default host:pid)")
	name, argv, code := parse(fs, args, stderr, true)
	if code >= 0 {
		return code
	}
	cli, err := c.client()
	if err != nil {
		return failf(stderr, exitFail, "lock: %v", err)
	}
	defer cli.Close()
	opts := []etcdlock.Option{etcdlock.TTL(*ttl), etcdlock.Prefix(c.prefix)}
	if *id != "" {
		opts = append(opts, etcdlock.Identity(*id))
	}
	m, err := etcdlock.New(cli, name, opts...)
	if err != nil {
		return failf(stderr, exitUsage, "lock: %v", err)
	}
	defer m.Close()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	if c.timeout > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), c.timeout)
	}
	defer cancel()
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()
	if *try {
		err = m.TryLock(ctx)
	} else {
		err = m.Lock(ctx)
	}
	died := errors.Is(err, robustlock.ErrOwnerDied)
	switch {
	case died:
		fmt.Fprintf(stderr, "robustlock etcd: lock %q: the previous holder %s died holding it; running the command as the repair\n",
			name, m.DeadOwner().ID)
	case errors.Is(err, robustlock.ErrBusy):
		st, _ := etcdlock.Inspect(context.Background(), cli, name, etcdlock.Prefix(c.prefix))
		return failf(stderr, exitFail, "lock %q: %s", name, st)
	case errors.Is(err, context.Canceled):
		return failf(stderr, exitInterrupted, "lock %q: interrupted", name)
	case err != nil:
		return failf(stderr, exitFail, "lock %q: %v", name, err)
	}
	cancel()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.Env = append(os.Environ(), fmt.Sprint("ROBUSTLOCK_FENCE=", m.Fence()), "ROBUSTLOCK_KEY="+m.Key())
	if died {
		cmd.Env = append(cmd.Env, "ROBUSTLOCK_OWNER_DIED=1", "ROBUSTLOCK_DEAD_OWNER="+m.DeadOwner().ID)
	}
	if err := cmd.Start(); err != nil {
		m.Unlock(context.Background())
		return failf(stderr, exitFail, "lock %q: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	lost := false
	var werr error
	var grace <-chan time.Time // after SIGTERM on a lost lock, SIGKILL
	lostc := m.Lost()
wait:
	for {
		select {
		case werr = <-exited:
			break wait
		case s := <-sigs:
			cmd.Process.Signal(s) // the command decides; the lock is held until it exits
		case <-lostc:
			lost, lostc = true, nil
			fmt.Fprintf(stderr, "robustlock etcd: lock %q lost (its lease ended); stopping the command\n", name)
			cmd.Process.Signal(syscall.SIGTERM)
			grace = time.After(10 * time.Second)
		case <-grace:
			cmd.Process.Kill()
		}
	}
	status := exitOK
	var exit *exec.ExitError
	if errors.As(werr, &exit) {
		status = exit.ExitCode()
		if status < 0 {
			status = exitFail // killed by a signal
		}
	} else if werr != nil {
		status = exitFail
	}

	uctx, ucancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ucancel()
	if died && !lost {
		if status != exitOK {
			// The repair failed: drop the lock without releasing it, so the
			// next holder is told of the death again.
			m.Close()
			fmt.Fprintf(stderr, "robustlock etcd: lock %q: the repair exited %d; left inconsistent for the next holder\n", name, status)
			return status
		}
		if err := m.MarkConsistent(uctx); err != nil {
			lost = lost || errors.Is(err, etcdlock.ErrLost)
			if !lost {
				return failf(stderr, exitFail, "lock %q: mark consistent: %v", name, err)
			}
		}
	}
	if err := m.Unlock(uctx); err != nil {
		if errors.Is(err, etcdlock.ErrLost) {
			return failf(stderr, exitFail, "lock %q: %v", name, err)
		}
		return failf(stderr, exitFail, "lock %q: unlock: %v", name, err)
	}
	if lost {
		return failf(stderr, exitFail, "lock %q was lost while the command ran", name)
	}
	return status
}

// syncWriter serialises Writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func runInspect(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	var c common
	c.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	name, _, code := parse(fs, args, stderr, false)
	if code >= 0 {
		return code
	}
	cli, err := c.client()
	if err != nil {
		return failf(stderr, exitFail, "inspect: %v", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), c.callTimeout())
	defer cancel()
	st, err := etcdlock.Inspect(ctx, cli, name, etcdlock.Prefix(c.prefix))
	if errors.Is(err, etcdlock.ErrBadName) {
		return failf(stderr, exitUsage, "inspect: %v", err)
	}
	if err != nil {
		return failf(stderr, exitFail, "inspect %q: %v", name, err)
	}
	if *asJSON {
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		return exitOK
	}
	yes := map[bool]string{true: "yes", false: "no"}
	fmt.Fprintf(stdout, "lock        %s (keys %s%s/)\n", st.Name, c.prefix, st.Name)
	fmt.Fprintf(stdout, "state       %s\n", st.State)
	if st.Holder.ID != "" || st.Holder.Lease != 0 {
		role := "holder"
		switch st.State {
		case "owner died":
			role = "dead holder"
		case "free", "not recoverable":
			role = "last holder"
		}
		fmt.Fprintf(stdout, "%-11s %s\n", role, st.Holder.ID)
		fmt.Fprintf(stdout, "lease       %x", st.Holder.Lease)
		if st.TTL >= 0 {
			fmt.Fprintf(stdout, " (%ds left)", st.TTL)
		}
		fmt.Fprintln(stdout)
	}
	if st.Fence != 0 {
		fmt.Fprintf(stdout, "fence       %d\n", st.Fence)
	}
	if st.Died != nil {
		fmt.Fprintf(stdout, "repairing   after %s (lease %x) died\n", st.Died.ID, st.Died.Lease)
	}
	fmt.Fprintf(stdout, "consistent  %s\n", yes[st.Consistent])
	fmt.Fprintf(stdout, "deaths      %d recovered\n", st.Deaths)
	fmt.Fprintf(stdout, "revision    %d\n", st.Revision)
	fmt.Fprintf(stdout, "summary     %s\n", st)
	return exitOK
}

func runReset(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reset", flag.ContinueOnError)
	var c common
	c.register(fs)
	name, _, code := parse(fs, args, stderr, false)
	if code >= 0 {
		return code
	}
	cli, err := c.client()
	if err != nil {
		return failf(stderr, exitFail, "reset: %v", err)
	}
	defer cli.Close()
	m, err := etcdlock.New(cli, name, etcdlock.Prefix(c.prefix))
	if err != nil {
		return failf(stderr, exitUsage, "reset: %v", err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), c.callTimeout())
	defer cancel()
	if err := m.Reset(ctx); err != nil {
		return failf(stderr, exitFail, "reset %q: %v", name, err)
	}
	fmt.Fprintf(stdout, "lock %q reset: free and consistent\n", name)
	return exitOK
}

func (c *common) callTimeout() time.Duration {
	if c.timeout > 0 {
		return c.timeout
	}
	return 10 * time.Second
}
