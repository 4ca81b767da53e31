package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	etcdlock "github.com/futexlab/robustlock/etcd"
	"github.com/futexlab/robustlock/etcd/internal/etcdtest"
)

func runT(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func status(t *testing.T, ep, name string) etcdlock.Status {
	t.Helper()
	code, out, errs := runT(t, "inspect", "-endpoints", ep, "--json", name)
	if code != 0 {
		t.Fatalf("inspect: %d %s", code, errs)
	}
	var st etcdlock.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("inspect --json: %v: %s", err, out)
	}
	return st
}

// kill takes the lock with a Mutex and drops it as a death would.
func kill(t *testing.T, cli *clientv3.Client, name string) {
	t.Helper()
	m, err := etcdlock.New(cli, name, etcdlock.TTL(1), etcdlock.Identity("victim"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.Close()
}

func TestLockRunsCommand(t *testing.T) {
	ep := etcdtest.StartNode(t)
	code, out, errs := runT(t, "lock", "-endpoints", ep, "-ttl", "1", "job", "--",
		"sh", "-c", `echo "fence=$ROBUSTLOCK_FENCE key=$ROBUSTLOCK_KEY died=${ROBUSTLOCK_OWNER_DIED:-0}"; exit 7`)
	if code != 7 || !strings.HasPrefix(out, "fence=") || !strings.Contains(out, "key=/robustlock/job/owner died=0") {
		t.Fatalf("lock: %d %q %q", code, out, errs)
	}
	if st := status(t, ep, "job"); st.State != "free" || !st.Consistent {
		t.Fatalf("after lock: %+v", st)
	}
	code, out, _ = runT(t, "inspect", "-endpoints", ep, "job")
	if code != 0 || !strings.Contains(out, "state       free") {
		t.Fatalf("inspect: %d %s", code, out)
	}
}

// After a death the command is the repair: a failing one leaves the lock
// inconsistent for the next holder, a succeeding one marks it consistent.
func TestLockRepair(t *testing.T) {
	ep := etcdtest.StartNode(t)
	cli := etcdtest.Client(t, ep)
	kill(t, cli, "job")
	if st := status(t, ep, "job"); st.State != "owner died" || st.Holder.ID != "victim" {
		t.Fatalf("after the death: %+v", st)
	}
	code, _, errs := runT(t, "lock", "-endpoints", ep, "-ttl", "1", "job", "--", "sh", "-c", "exit 3")
	if code != 3 || !strings.Contains(errs, "victim died") || !strings.Contains(errs, "left inconsistent") {
		t.Fatalf("failed repair: %d %q", code, errs)
	}
	if st := status(t, ep, "job"); st.State != "owner died" || st.Consistent {
		t.Fatalf("after a failed repair: %+v", st)
	}
	code, _, errs = runT(t, "lock", "-endpoints", ep, "-ttl", "1", "job", "--",
		"sh", "-c", `test "$ROBUSTLOCK_OWNER_DIED" = 1 && test -n "$ROBUSTLOCK_DEAD_OWNER"`)
	if code != 0 {
		t.Fatalf("repair: %d %q", code, errs)
	}
	if st := status(t, ep, "job"); st.State != "free" || !st.Consistent || st.Deaths != 2 {
		t.Fatalf("after the repair: %+v", st)
	}
	// not recoverable, then reset
	m, _ := etcdlock.New(cli, "job", etcdlock.TTL(1))
	defer m.Close()
	kill(t, cli, "job")
	m.Lock(context.Background())
	m.Unlock(context.Background())
	if code, _, errs := runT(t, "lock", "-endpoints", ep, "job", "--", "true"); code != 1 || !strings.Contains(errs, "not recoverable") {
		t.Fatalf("lock on a not recoverable lock: %d %q", code, errs)
	}
	if code, out, errs := runT(t, "reset", "-endpoints", ep, "job"); code != 0 {
		t.Fatalf("reset: %d %q %q", code, out, errs)
	}
	if code, _, errs := runT(t, "lock", "-endpoints", ep, "job", "--", "true"); code != 0 {
		t.Fatalf("lock after reset: %d %q", code, errs)
	}
}

func TestLockTryAndLost(t *testing.T) {
	ep := etcdtest.StartNode(t)
	cli := etcdtest.Client(t, ep)
	m, _ := etcdlock.New(cli, "job", etcdlock.Identity("other"))
	defer m.Close()
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runT(t, "lock", "-endpoints", ep, "-try", "job", "--", "true"); code != 1 || !strings.Contains(errs, "held by other") {
		t.Fatalf("lock -try on a held lock: %d %q", code, errs)
	}
	m.Unlock(context.Background())

	done := make(chan string, 1)
	go func() {
		code, _, errs := runT(t, "lock", "-endpoints", ep, "-ttl", "1", "job", "--", "sleep", "60")
		done <- strings.Join([]string{string(rune('0' + code)), errs}, " ")
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := status(t, ep, "job")
		if st.State == "held" {
			if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(st.Holder.Lease)); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lock never held")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case r := <-done:
		if !strings.HasPrefix(r, "1 ") || !strings.Contains(r, "lost") {
			t.Fatalf("lock whose lease was revoked: %s", r)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("lock did not stop its command after losing the lease")
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{}, {"nope"}, {"lock"}, {"lock", "x"}, {"lock", "x", "--"}, {"inspect"}, {"inspect", "a", "b"},
		{"inspect", "-endpoints", "127.0.0.1:1", ""}, {"lock", "-bogus", "x", "--", "true"},
	} {
		if code, _, _ := runT(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code, out, _ := runT(t, "help"); code != 0 || !strings.Contains(out, "lock [flags] NAME -- CMD") {
		t.Errorf("help: %d %q", code, out)
	}
}
