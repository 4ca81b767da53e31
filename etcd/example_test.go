package etcdlock_test

import (
	"context"
	"errors"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/futexlab/robustlock"
	etcdlock "github.com/futexlab/robustlock/etcd"
)

// The same recovery contract as the shared-memory Mutex, across hosts:
// the lock's previous holder died (its lease expired) while holding it, so
// the data it guards may be half-written. Writes to etcd go through the
// fence, so a holder that lost the lock cannot overwrite its successor's.
func ExampleMutex() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	m, err := etcdlock.New(cli, "accounts", etcdlock.TTL(5))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()

	switch err := m.Lock(ctx); {
	case errors.Is(err, robustlock.ErrOwnerDied):
		log.Printf("%s died holding the lock; repairing", m.DeadOwner().ID)
		// ... roll back the half-done update (fenced writes, m.Do) ...
		if err := m.MarkConsistent(ctx); err != nil {
			log.Fatal(err)
		}
	case err != nil:
		log.Fatal(err) // ErrNotRecoverable, or etcd unreachable
	}

	// Fenced: refused once m has lost the lock (ErrLost).
	if err := m.Put(ctx, "/accounts/alice", "90"); err != nil {
		log.Fatal(err)
	}
	select {
	case <-m.Lost():
		log.Print("lease gone: another holder may have the lock; stop")
	default:
	}
	if err := m.Unlock(ctx); errors.Is(err, etcdlock.ErrLost) {
		log.Print("the lock was lost before Unlock; the next holder recovers")
	}
}

// Guard makes any transaction fenced: its Then branch applies only while
// m's acquisition is the lock's current one.
func ExampleMutex_Guard() {
	var cli *clientv3.Client // connected as in the Mutex example
	var m *etcdlock.Mutex    // holding the lock
	ctx := context.Background()
	resp, err := cli.Txn(ctx).
		If(m.Guard(), clientv3.Compare(clientv3.Value("/jobs/next"), "=", "41")).
		Then(clientv3.OpPut("/jobs/next", "42")).
		Commit()
	if err == nil && !resp.Succeeded {
		log.Print("lost the lock, or /jobs/next moved")
	}
}

// Fence is for storage outside etcd: pass it with each write, and have the
// storage refuse tokens lower than the highest it has seen.
func ExampleMutex_Fence() {
	var m *etcdlock.Mutex // holding the lock
	token := m.Fence()
	_ = token // e.g. an HTTP header or a column compared on write
}
