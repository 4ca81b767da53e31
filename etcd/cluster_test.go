package etcdlock_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/futexlab/robustlock"
	etcdlock "github.com/futexlab/robustlock/etcd"
)

// A 3-member cluster, each member its own process. Three holders churn on
// one lock, each acquisition reading a counter and writing counter+1 and
// its fence under the fence; the leader is SIGKILLed in the middle. No
// double ownership: no increment is lost (two holders passing their fenced
// writes at once would lose one) and the fences written, in revision
// order, strictly increase. The lock keeps working on the two members left.
func TestLeaderKilledDuringChurn(t *testing.T) {
	const before, after = 20, 20
	c := startCluster(t, 3)
	admin := client(t, c.endpoints...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // liveness only
	defer cancel()

	var done atomic.Int64 // increments that passed their fence
	var ambiguous, refused, deaths, transient atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		cli := client(t, c.endpoints...)
		m, err := etcdlock.New(cli, "churn", etcdlock.TTL(2), etcdlock.Identity(fmt.Sprint("h", w)))
		ok(t, "New", err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer m.Close()
			for {
				select {
				case <-stop:
					return
				default:
				}
				lctx, lcancel := context.WithTimeout(ctx, 20*time.Second)
				err := m.Lock(lctx)
				lcancel()
				if errors.Is(err, robustlock.ErrOwnerDied) {
					deaths.Add(1) // nothing to repair: each increment is one transaction
					err = m.MarkConsistent(ctx)
				}
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					transient.Add(1) // leader lost, member down: try again
					m.Unlock(ctx)
					continue
				}
				resp, err := cli.Get(ctx, "churn/counter")
				if err == nil {
					v := int64(0)
					if len(resp.Kvs) > 0 {
						v, _ = strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
					}
					_, err = m.Do(ctx, clientv3.OpPut("churn/counter", strconv.FormatInt(v+1, 10)),
						clientv3.OpPut("churn/fence", strconv.FormatInt(m.Fence(), 10)))
					switch {
					case err == nil:
						done.Add(1)
					case errors.Is(err, etcdlock.ErrLost):
						refused.Add(1)
					default:
						ambiguous.Add(1) // may or may not have committed
					}
				}
				for range 5 {
					if err := m.Unlock(ctx); err == nil || errors.Is(err, robustlock.ErrNotOwner) {
						break
					}
				}
			}
		}()
	}
	waitFor := func(n int64) {
		for done.Load() < n {
			if ctx.Err() != nil {
				t.Fatalf("only %d increments before the liveness bound", done.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(before)
	l := c.leader(t, admin)
	atKill := done.Load()
	c.members[l].cmd.Process.Kill()
	<-c.members[l].done
	waitFor(atKill + after)
	close(stop)
	wg.Wait()

	// Read from a live member.
	resp, err := admin.Get(ctx, "churn/counter")
	ok(t, "Get counter", err)
	counter, _ := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
	if counter < done.Load() || counter > done.Load()+ambiguous.Load() {
		t.Errorf("counter %d for %d fenced increments (+%d ambiguous): two holders passed the fence at once",
			counter, done.Load(), ambiguous.Load())
	}
	prev := int64(0)
	for _, ev := range history(t, admin, "churn/fence") {
		f, _ := strconv.ParseInt(string(ev.Kv.Value), 10, 64)
		if f <= prev {
			t.Errorf("rev %d: fence %d written after fence %d", ev.Kv.ModRevision, f, prev)
		}
		if f >= ev.Kv.ModRevision {
			t.Errorf("rev %d: fence %d not below the write's revision", ev.Kv.ModRevision, f)
		}
		prev = f
	}
	t.Logf("leader m%d killed after %d increments; %d in all (%d ambiguous, %d refused by the fence); "+
		"%d owner deaths, %d transient errors", l, atKill, counter, ambiguous.Load(), refused.Load(), deaths.Load(), transient.Load())
}
