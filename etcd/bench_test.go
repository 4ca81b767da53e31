package etcdlock_test

// Acquisition cost across hosts, beside the shared-memory Mutex, in one
// run so the figures are ratios on the same machine: robustlock.Mutex
// (shared memory, no syscall uncontended), etcd's own concurrency.Mutex
// (the baseline this package adds owner-died detection to), and this
// package's Mutex on a single in-process node and on a 3-member cluster
// of processes. Each Lock/Unlock pair is one op.
//
//	go test -run '^$' -bench . -benchtime 2s

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
	etcdlock "github.com/futexlab/robustlock/etcd"
)

func BenchmarkSharedMemoryMutex(b *testing.B) {
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANON)
	if err != nil {
		b.Skip(err)
	}
	defer unix.Munmap(mem)
	m, err := robustlock.At(mem, 0)
	if err != nil {
		b.Skip(err)
	}
	m.Init()
	b.Run("uncontended", func(b *testing.B) {
		for b.Loop() {
			if err := m.Lock(); err != nil {
				b.Skip(err)
			}
			m.Unlock()
		}
	})
}

func BenchmarkEtcdMutex(b *testing.B) {
	ep := startNode(b)
	cli := client(b, ep)
	b.Run("node/uncontended", func(b *testing.B) { benchEtcdlock(b, cli, 1) })
	b.Run("node/contended-4", func(b *testing.B) { benchEtcdlock(b, cli, 4) })
	b.Run("node/concurrency.Mutex", func(b *testing.B) {
		s, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		m := concurrency.NewMutex(s, "/bench-concurrency")
		ctx := context.Background()
		for b.Loop() {
			if err := m.Lock(ctx); err != nil {
				b.Fatal(err)
			}
			if err := m.Unlock(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	if testing.Short() {
		return
	}
	c := startCluster(b, 3)
	ccli := client(b, c.endpoints...)
	b.Run("cluster3/uncontended", func(b *testing.B) { benchEtcdlock(b, ccli, 1) })
	b.Run("cluster3/contended-4", func(b *testing.B) { benchEtcdlock(b, ccli, 4) })
}

// benchEtcdlock runs b.N Lock/Unlock pairs shared among n Mutexes that
// compete for one lock.
func benchEtcdlock(b *testing.B, cli *clientv3.Client, n int) {
	ms := make([]*etcdlock.Mutex, n)
	for i := range ms {
		m, err := etcdlock.New(cli, "bench-"+b.Name(), etcdlock.TTL(10))
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		ms[i] = m
	}
	ctx := context.Background()
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ResetTimer()
	for _, m := range ms {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := m.Lock(ctx); err != nil {
					b.Error(err)
					return
				}
				if err := m.Unlock(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "acq/s")
}
