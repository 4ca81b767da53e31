package etcdlock_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/futexlab/robustlock"
	etcdlock "github.com/futexlab/robustlock/etcd"
)

// The bank: accounts under one lock, moved between by transfers of three
// fenced writes (journal, debit, credit+journal delete+ops count), so a
// holder killed between them leaves a half-done transfer for the next
// holder to roll back from the journal.
const (
	bankLock     = "bank"
	bankAccounts = 4
	bankStart    = 100
	bankJournal  = "bank/journal"
	bankOps      = "bank/ops"
	bankRecovery = "bank/recovered/" // + dead lease in hex: written once per death, by its recoverer
)

func acct(i int) string { return fmt.Sprintf("bank/a%d", i) }

func envClient() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: strings.Split(os.Getenv("ETCDLOCK_ENDPOINTS"), ","),
		DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
}

// helperWorker moves money under the bank lock until killed.
func helperWorker() int {
	watchStdin()
	cli, err := envClient()
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	m, err := etcdlock.New(cli, bankLock, etcdlock.TTL(1), etcdlock.Identity(os.Getenv("ETCDLOCK_ID")))
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	ctx := context.Background()
	for {
		err := m.Lock(ctx)
		if errors.Is(err, robustlock.ErrOwnerDied) {
			if err = repairBank(ctx, cli, m); err == nil {
				err = m.MarkConsistent(ctx)
			}
		} else if err != nil {
			fmt.Println("ERR lock", err)
			return 1
		}
		if err == nil {
			err = transfer(ctx, cli, m)
		}
		switch {
		case errors.Is(err, errBad):
			fmt.Println("ERR", err)
			return 3
		case err != nil && !errors.Is(err, etcdlock.ErrLost):
			// etcd slow or unavailable mid-transfer: give the lock up as
			// a death would (Close revokes the lease without a release),
			// so that the next holder repairs, and start over.
			fmt.Println("RETRY", err)
			m.Close()
			if m, err = etcdlock.New(cli, bankLock, etcdlock.TTL(1), etcdlock.Identity(os.Getenv("ETCDLOCK_ID"))); err != nil {
				fmt.Println("ERR", err)
				return 1
			}
			continue
		}
		for {
			err := m.Unlock(ctx)
			if errors.Is(err, etcdlock.ErrLost) {
				fmt.Println("LOST") // starved past the TTL: the next holder repairs
			}
			if err == nil || errors.Is(err, robustlock.ErrNotOwner) {
				break
			}
			fmt.Println("RETRY unlock", err)
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// errBad is the bank's invariant broken: the test fails.
var errBad = errors.New("BAD")

// readBank reads the accounts and the ops count.
func readBank(ctx context.Context, cli *clientv3.Client) (vals [bankAccounts]int, ops int, err error) {
	resp, err := cli.Txn(ctx).Then(clientv3.OpGet("bank/a", clientv3.WithPrefix()), clientv3.OpGet(bankOps)).Commit()
	if err != nil {
		return vals, 0, err
	}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		i, _ := strconv.Atoi(strings.TrimPrefix(string(kv.Key), "bank/a"))
		vals[i], _ = strconv.Atoi(string(kv.Value))
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		ops, _ = strconv.Atoi(string(kvs[0].Value))
	}
	return vals, ops, nil
}

func transfer(ctx context.Context, cli *clientv3.Client, m *etcdlock.Mutex) error {
	vals, ops, err := readBank(ctx, cli)
	if err != nil {
		return err
	}
	sum := 0
	for _, v := range vals {
		sum += v
	}
	if sum != bankAccounts*bankStart {
		return fmt.Errorf("%w: accounts add up to %d, want %d: %v", errBad, sum, bankAccounts*bankStart, vals)
	}
	from, to := rand.IntN(bankAccounts), rand.IntN(bankAccounts-1)
	if to >= from {
		to++
	}
	amt := 1 + rand.IntN(10)
	if err := m.Put(ctx, bankJournal, fmt.Sprintf("%d %d %d %d", from, to, vals[from], vals[to])); err != nil {
		return err
	}
	if err := m.Put(ctx, acct(from), strconv.Itoa(vals[from]-amt)); err != nil {
		return err
	}
	time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond) // a window for kills mid-transfer
	_, err = m.Do(ctx, clientv3.OpPut(acct(to), strconv.Itoa(vals[to]+amt)),
		clientv3.OpDelete(bankJournal), clientv3.OpPut(bankOps, strconv.Itoa(ops+1)))
	return err
}

// repairBank rolls back a half-done transfer and records the recovery of
// the dead holder in one fenced transaction.
func repairBank(ctx context.Context, cli *clientv3.Client, m *etcdlock.Mutex) error {
	resp, err := cli.Get(ctx, bankJournal)
	if err != nil {
		return err
	}
	ops := []clientv3.Op{clientv3.OpPut(bankRecovery+strconv.FormatInt(m.DeadOwner().Lease, 16), strconv.FormatInt(m.Fence(), 10))}
	if len(resp.Kvs) > 0 {
		var from, to, vf, vt int
		if _, err := fmt.Sscan(string(resp.Kvs[0].Value), &from, &to, &vf, &vt); err != nil {
			return fmt.Errorf("journal %q: %v", resp.Kvs[0].Value, err)
		}
		ops = append(ops, clientv3.OpPut(acct(from), strconv.Itoa(vf)), clientv3.OpPut(acct(to), strconv.Itoa(vt)),
			clientv3.OpDelete(bankJournal))
	}
	_, err = m.Do(ctx, ops...)
	return err
}

// stateRecord mirrors the state key's JSON, as the tests read its history.
type stateRecord struct {
	State  string `json:"state"`
	Lease  int64  `json:"lease"`
	Holder string `json:"holder"`
	Died   *struct {
		ID    string `json:"id"`
		Lease int64  `json:"lease"`
	} `json:"died"`
}

// history returns every change of key (which must exist) from revision 1
// to its current value, in order.
func history(t *testing.T, cli *clientv3.Client, key string) []*clientv3.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	defer cancel()
	now, err := cli.Get(ctx, key)
	ok(t, "Get", err)
	if len(now.Kvs) == 0 {
		t.Fatalf("history: %s does not exist", key)
	}
	var evs []*clientv3.Event
	for wr := range cli.Watch(ctx, key, clientv3.WithRev(1)) {
		ok(t, "Watch history", wr.Err())
		evs = append(evs, wr.Events...)
		if len(evs) > 0 && evs[len(evs)-1].Kv.ModRevision >= now.Kvs[0].ModRevision {
			return evs
		}
	}
	t.Fatal("history watch ended")
	return nil
}

// Worker processes move money under the lock while the test SIGKILLs them,
// mostly while they hold it. Exactly-once accounting, from the state key's
// history as etcd recorded it: every lease whose last recorded act was
// holding the lock is recovered exactly once (one ErrOwnerDied naming it,
// one ledger entry written by its recoverer), no lease is recovered that is
// still alive, and the accounts always add up.
func TestKillHoldersExactlyOnce(t *testing.T) {
	kills := 12
	if testing.Short() {
		kills = 4
	}
	if s := os.Getenv("ETCDLOCK_KILLS"); s != "" {
		kills, _ = strconv.Atoi(s)
	}
	ep := startNode(t)
	cli := client(t, ep)
	ctx := ctxT(t)
	for i := range bankAccounts {
		_, err := cli.Put(ctx, acct(i), strconv.Itoa(bankStart))
		ok(t, "Put", err)
	}
	workers := map[string]*proc{}
	n := 0
	add := func() {
		id := fmt.Sprintf("w%d", n)
		n++
		workers[id] = spawn(t, "worker", "ETCDLOCK_ENDPOINTS="+ep, "ETCDLOCK_ID="+id)
	}
	for range 3 {
		add()
	}
	killedLeases, maxRecovery := map[int64]bool{}, time.Duration(0)
	deadline := time.Now().Add(10 * time.Minute) // liveness only
	for k := 0; k < kills; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d kills in time", k, kills)
		}
		for id, w := range workers {
			select {
			case <-w.done:
				t.Fatalf("worker %s exited by itself (%v): %q", id, w.err, w.output())
			default:
			}
		}
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		st, err := etcdlock.Inspect(ctx, cli, bankLock)
		ok(t, "Inspect", err)
		victim, holder := workers[st.Holder.ID], st.State == "held" || st.State == "inconsistent"
		if victim == nil || !holder {
			continue
		}
		if rand.IntN(5) == 0 { // now and then a worker that does not hold it
			for id, w := range workers {
				if id != st.Holder.ID {
					victim, holder = w, false
					break
				}
			}
		}
		start := time.Now()
		victim.cmd.Process.Kill()
		<-victim.done
		for id, w := range workers {
			if w == victim {
				delete(workers, id)
			}
		}
		add()
		k++
		if !holder {
			continue
		}
		killedLeases[st.Holder.Lease] = true
		// Wait until the lock has moved on from the dead holder's lease.
		for {
			s, err := etcdlock.Inspect(ctx, cli, bankLock)
			ok(t, "Inspect", err)
			if s.Holder.Lease != st.Holder.Lease && s.State != "owner died" {
				maxRecovery = max(maxRecovery, time.Since(start))
				break
			}
			if time.Since(start) > liveness {
				t.Fatalf("the death of %s was not recovered within %v: %+v", st.Holder.ID, liveness, s)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, w := range workers { // their stdin closes: each exits at once, holding or not
		w.stdin.Close()
		<-w.done
	}
	// The test takes the lock last, and recovers like any worker.
	m := newMutex(t, cli, bankLock, "final")
	if err := m.Lock(ctx); errors.Is(err, robustlock.ErrOwnerDied) {
		ok(t, "final repair", repairBank(ctx, cli, m))
		ok(t, "MarkConsistent", m.MarkConsistent(ctx))
	} else {
		ok(t, "final Lock", err)
	}
	vals, ops, err := readBank(ctx, cli)
	ok(t, "readBank", err)
	sum := 0
	for _, v := range vals {
		sum += v
	}
	if sum != bankAccounts*bankStart {
		t.Errorf("accounts add up to %d, want %d: %v", sum, bankAccounts*bankStart, vals)
	}
	finalLease := inspect(t, cli, bankLock).Holder.Lease

	// The cluster's record: each death while holding recovered exactly once.
	last := map[int64]stateRecord{}
	recovered := map[int64]int{}
	for _, ev := range history(t, cli, "/robustlock/"+bankLock+"/state") {
		var r stateRecord
		ok(t, "decode state", json.Unmarshal(ev.Kv.Value, &r))
		if r.Died != nil {
			recovered[r.Died.Lease]++
			if p := last[r.Died.Lease]; p.State != "held" && p.State != "inconsistent" {
				t.Errorf("rev %d: recovery from lease %x, whose last record was %+v (not holding)", ev.Kv.ModRevision, r.Died.Lease, p)
			}
		}
		last[r.Lease] = r
	}
	deaths := 0
	for lease, r := range last {
		if lease == finalLease || (r.State != "held" && r.State != "inconsistent") {
			continue
		}
		deaths++
		if recovered[lease] != 1 {
			t.Errorf("lease %x of %s died holding the lock, recovered %d times", lease, r.Holder, recovered[lease])
		}
	}
	ledger, err := cli.Get(ctx, bankRecovery, clientv3.WithPrefix())
	ok(t, "Get ledger", err)
	if len(ledger.Kvs) != len(recovered) {
		t.Errorf("%d ledger entries for %d recoveries", len(ledger.Kvs), len(recovered))
	}
	for _, kv := range ledger.Kvs {
		l, _ := strconv.ParseInt(strings.TrimPrefix(string(kv.Key), bankRecovery), 16, 64)
		if recovered[l] != 1 || kv.Version != 1 {
			t.Errorf("ledger %s: version %d, %d recoveries in the history", kv.Key, kv.Version, recovered[l])
		}
	}
	for lease, c := range recovered {
		if c != 1 {
			t.Errorf("lease %x recovered %d times", lease, c)
		}
		ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(lease))
		ok(t, "TimeToLive", err)
		if ttl.TTL != -1 {
			t.Errorf("lease %x was recovered as dead but is alive (TTL %d)", lease, ttl.TTL)
		}
	}
	killedHolding := 0
	for lease := range killedLeases {
		if recovered[lease] == 1 {
			killedHolding++
		}
	}
	if killedHolding == 0 {
		t.Errorf("no kill hit a holder in %d kills", kills)
	}
	ok(t, "final Unlock", m.Unlock(ctx))
	t.Logf("%d kills, %d while holding; %d deaths holding in the history (with the final stop), all recovered once; "+
		"%d transfers; slowest hand-over after a kill %v (TTL 1 s)", kills, killedHolding, deaths, ops, maxRecovery.Round(time.Millisecond))
}

// helperStopper takes the lock and writes under it, fenced, until its
// writes are refused; then reports what it was told.
func helperStopper() int {
	watchStdin()
	cli, err := envClient()
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	m, err := etcdlock.New(cli, "pause", etcdlock.TTL(1), etcdlock.Identity("stopper"))
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	ctx := context.Background()
	if err := m.Lock(ctx); err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	fmt.Println("HELD", m.Fence())
	for i := 0; ; i++ {
		err := m.Put(ctx, "pause/data", fmt.Sprintf("A-%d", i))
		if errors.Is(err, etcdlock.ErrLost) {
			fmt.Println("REFUSED", i)
			break
		}
		if err != nil {
			fmt.Println("ERR", err)
			return 1
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-m.Lost():
		fmt.Println("LOSTCHAN closed")
	case <-time.After(liveness):
		fmt.Println("LOSTCHAN open")
	}
	err = m.Put(ctx, "pause/data", "A-after")
	fmt.Println("PUT2 lost", errors.Is(err, etcdlock.ErrLost))
	err = m.Unlock(ctx)
	var le *etcdlock.LostError
	fmt.Println("UNLOCK lost", errors.As(err, &le), errors.Is(err, robustlock.ErrNotOwner))
	return 0
}

// A holder SIGSTOPped past its TTL: another process takes the lock with
// ErrOwnerDied; once SIGCONTed the old holder's fenced writes are refused,
// Lost closes and Unlock returns a *LostError; in the history no write of
// the old holder comes after the new holder's fence.
func TestStoppedHolderIsFenced(t *testing.T) {
	ep := startNode(t)
	cli := client(t, ep)
	ctx := ctxT(t)
	p := spawn(t, "stopper", "ETCDLOCK_ENDPOINTS="+ep)
	fenceA, _ := strconv.ParseInt(strings.Fields(p.expect(t, "HELD", liveness))[1], 10, 64)
	time.Sleep(100 * time.Millisecond) // some writes while it holds
	ok(t, "SIGSTOP", p.cmd.Process.Signal(syscall.SIGSTOP))

	b := newMutex(t, cli, "pause", "b")
	err := b.Lock(ctx) // waits for the stopped holder's lease to expire
	is(t, "b.Lock", err, robustlock.ErrOwnerDied)
	if d := b.DeadOwner(); d.ID != "stopper" {
		t.Fatalf("DeadOwner %+v", d)
	}
	fenceB := b.Fence()
	if fenceB <= fenceA {
		t.Fatalf("fence %d after %d", fenceB, fenceA)
	}
	ok(t, "b.Put", b.Put(ctx, "pause/data", "B"))
	ok(t, "SIGCONT", p.cmd.Process.Signal(syscall.SIGCONT))

	p.expect(t, "REFUSED", liveness)
	if l := p.expect(t, "LOSTCHAN", liveness); l != "LOSTCHAN closed" {
		t.Errorf("old holder: %s", l)
	}
	if l := p.expect(t, "PUT2", liveness); l != "PUT2 lost true" {
		t.Errorf("old holder's write after Lost: %s", l)
	}
	if l := p.expect(t, "UNLOCK", liveness); l != "UNLOCK lost true true" {
		t.Errorf("old holder's Unlock: %s", l)
	}
	evs := history(t, cli, "pause/data")
	nA := 0
	for _, ev := range evs {
		v, rev := string(ev.Kv.Value), ev.Kv.ModRevision
		if strings.HasPrefix(v, "A-") {
			nA++
			if rev >= fenceB {
				t.Errorf("old holder's write %q at revision %d passed after the new holder's fence %d", v, rev, fenceB)
			}
		} else if rev <= fenceB {
			t.Errorf("new holder's write %q at revision %d before its fence %d", v, rev, fenceB)
		}
	}
	if nA == 0 {
		t.Error("the old holder wrote nothing while it held the lock")
	}
	resp, err := cli.Get(ctx, "pause/data")
	ok(t, "Get", err)
	if v := string(resp.Kvs[0].Value); v != "B" {
		t.Errorf("pause/data = %q, want B", v)
	}
	ok(t, "b.MarkConsistent", b.MarkConsistent(ctx))
	ok(t, "b.Unlock", b.Unlock(ctx))
	t.Logf("old holder fence %d wrote %d times before the stop; new holder fence %d", fenceA, nA, fenceB)
}
