package etcdlock

import (
	"context"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The recorded states of a lock (the "state" field of its state key). An
// absent state key is free.
const (
	stFree           = "free"
	stHeld           = "held"
	stInconsistent   = "inconsistent"
	stNotRecoverable = "notrecoverable"
)

// record is the JSON value of NAME/state. While held or inconsistent,
// Lease and Holder name the holder; once released they name the last one
// and Fence is the released acquisition's fence, so that an Unlock retried
// after an ambiguous failure can tell its own release from a loss.
type record struct {
	State  string  `json:"state"`
	Lease  int64   `json:"lease,omitempty"`
	Holder string  `json:"holder,omitempty"`
	Fence  int64   `json:"fence,omitempty"`
	Died   *Holder `json:"died,omitempty"`   // inconsistent: the holder whose death is being repaired
	Deaths int64   `json:"deaths,omitempty"` // owner deaths recovered so far
}

func (r record) encode() string {
	b, _ := json.Marshal(r) // a struct of strings and ints: cannot fail
	return string(b)
}

// decodeRecord parses a state key; kv nil means absent, which is free.
func decodeRecord(kv *mvccpb.KeyValue) (record, error) {
	if kv == nil {
		return record{State: stFree}, nil
	}
	var r record
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return r, fmt.Errorf("%w: %s: %v", ErrCorrupt, kv.Key, err)
	}
	switch r.State {
	case stFree, stHeld, stInconsistent, stNotRecoverable:
		return r, nil
	}
	return r, fmt.Errorf("%w: %s: unknown state %q", ErrCorrupt, kv.Key, r.State)
}

// Holder identifies one holder of a lock: the identity it gave (by default
// host:pid) and its lease.
type Holder struct {
	ID    string `json:"id"`
	Lease int64  `json:"lease"`
}

// keys is a lock's pair of keys.
type keys struct{ name, owner, state string }

func lockKeys(prefix, name string) (keys, error) {
	if err := checkName(name); err != nil {
		return keys{}, err
	}
	return keys{name, prefix + name + "/owner", prefix + name + "/state"}, nil
}

func checkName(name string) error {
	if name == "" || len(name) > 1024 || !utf8.ValidString(name) {
		return fmt.Errorf("%w: %q (want 1 to 1024 bytes of UTF-8)", ErrBadName, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %q has a control character", ErrBadName, name)
		}
	}
	return nil
}

// readOps are the Else branch of every transaction on the lock: the two
// keys at the transaction's revision.
func (k keys) readOps() []clientv3.Op {
	return []clientv3.Op{clientv3.OpGet(k.owner), clientv3.OpGet(k.state)}
}

// readResult extracts the two keys from a transaction whose Else branch
// was readOps; nil for an absent key.
func readResult(resp *clientv3.TxnResponse) (owner, state *mvccpb.KeyValue) {
	if len(resp.Responses) != 2 {
		return nil, nil
	}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		owner = kvs[0]
	}
	if kvs := resp.Responses[1].GetResponseRange().GetKvs(); len(kvs) > 0 {
		state = kvs[0]
	}
	return owner, state
}

// Status is a snapshot of a lock, read in one transaction without taking it.
type Status struct {
	Name string `json:"name"`
	// State is "free", "held", "owner died" (the holder's lease ended
	// while it held the lock; the next Lock gets ErrOwnerDied),
	// "inconsistent" (held by a holder repairing after a death) or
	// "not recoverable".
	State string `json:"state"`
	// Holder is the holder while held or inconsistent, the dead holder for
	// "owner died", and the last holder when free or not recoverable.
	Holder Holder `json:"holder"`
	// Fence is the holder's fencing token while held; 0 otherwise.
	Fence int64 `json:"fence,omitempty"`
	// TTL is the seconds left on the holder's lease, as the server counts
	// them; -1 when nobody holds the lock.
	TTL int64 `json:"ttl"`
	// Consistent is false from an owner's death until MarkConsistent, and
	// for good once not recoverable.
	Consistent bool `json:"consistent"`
	// Died is the holder whose death an inconsistent holder is repairing.
	Died *Holder `json:"died,omitempty"`
	// Deaths counts the owner deaths recovered so far.
	Deaths int64 `json:"deaths"`
	// Revision is the etcd revision the snapshot was read at.
	Revision int64 `json:"revision"`
}

// String describes the status in a line, as robustlock-etcd inspect shows it.
func (s Status) String() string {
	switch s.State {
	case "held":
		return fmt.Sprintf("held by %s (lease %x, %ds left), fence %d", s.Holder.ID, s.Holder.Lease, s.TTL, s.Fence)
	case "inconsistent":
		d := "a dead holder"
		if s.Died != nil {
			d = s.Died.ID
		}
		return fmt.Sprintf("held by %s (lease %x, %ds left), fence %d, inconsistent: repairing after %s died",
			s.Holder.ID, s.Holder.Lease, s.TTL, s.Fence, d)
	case "owner died":
		return fmt.Sprintf("owner died: the lease %x of %s ended while it held the lock; the next Lock recovers",
			s.Holder.Lease, s.Holder.ID)
	case "not recoverable":
		return "not recoverable: a recovering holder unlocked without MarkConsistent; Reset when the data is rebuilt"
	}
	return "free"
}

// Inspect reads the status of the lock name (with the Prefix option given
// to New, if any) without taking it.
func Inspect(ctx context.Context, cli *clientv3.Client, name string, opts ...Option) (Status, error) {
	cfg, err := newConfig(cli, opts)
	if err != nil {
		return Status{}, err
	}
	k, err := lockKeys(cfg.prefix, name)
	if err != nil {
		return Status{}, err
	}
	resp, err := cli.Txn(ctx).Then(k.readOps()...).Commit()
	if err != nil {
		return Status{}, err
	}
	owner, state := readResult(resp)
	rec, err := decodeRecord(state)
	if err != nil {
		return Status{}, err
	}
	st := Status{Name: name, Holder: Holder{rec.Holder, rec.Lease}, TTL: -1, Deaths: rec.Deaths,
		Revision: resp.Header.Revision, Consistent: rec.State != stInconsistent && rec.State != stNotRecoverable}
	switch {
	case owner != nil:
		st.State, st.Fence = "held", owner.CreateRevision
		if rec.State == stInconsistent {
			st.State, st.Died = "inconsistent", rec.Died
		}
		if owner.Lease != rec.Lease {
			st.Holder = Holder{string(owner.Value), owner.Lease}
		}
		ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(owner.Lease))
		if err != nil {
			return Status{}, err
		}
		st.TTL = ttl.TTL
	case rec.State == stHeld || rec.State == stInconsistent:
		st.State, st.Consistent = "owner died", false
	case rec.State == stNotRecoverable:
		st.State = "not recoverable"
	default:
		st.State = "free"
	}
	return st, nil
}
