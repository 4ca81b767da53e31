package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// FreePorts returns n TCP ports on 127.0.0.1 that were free a moment ago.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// Config is the embed configuration of member i of a cluster whose peer
// and client ports are given, with its data in dir. The server's minimum
// lease TTL is 1.5 election timeouts, rounded up to whole seconds.
func Config(i int, peers, clients []int, dir, token string, tickMs, electionMs uint) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = fmt.Sprintf("m%d", i)
	cfg.Dir = dir
	u := func(p int) url.URL { return url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", p)} }
	cfg.ListenPeerUrls = []url.URL{u(peers[i])}
	cfg.AdvertisePeerUrls = cfg.ListenPeerUrls
	cfg.ListenClientUrls = []url.URL{u(clients[i])}
	cfg.AdvertiseClientUrls = cfg.ListenClientUrls
	var ic []string
	for j, p := range peers {
		ic = append(ic, fmt.Sprintf("m%d=http://127.0.0.1:%d", j, p))
	}
	cfg.InitialCluster = strings.Join(ic, ",")
	cfg.InitialClusterToken = token
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.TickMs, cfg.ElectionMs = tickMs, electionMs
	cfg.UnsafeNoFsync = true // test data: durability across power loss is not under test
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	return cfg
}

// StartNode starts a single-node etcd in this process, stopped at the end
// of the test, and returns its client endpoint. TTLs down to 1 s are
// allowed (heartbeat 50 ms, election 500 ms).
func StartNode(t testing.TB) string {
	t.Helper()
	for try := 0; ; try++ {
		ports := FreePorts(t, 2)
		cfg := Config(0, ports[:1], ports[1:], filepath.Join(t.TempDir(), "etcd"),
			fmt.Sprintf("t%d", time.Now().UnixNano()), 50, 500)
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			if try < 3 && strings.Contains(err.Error(), "address already in use") {
				continue // another process took a port between FreePorts and now
			}
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		select {
		case <-e.Server.ReadyNotify():
		case <-time.After(60 * time.Second):
			t.Fatal("etcd did not become ready")
		}
		return fmt.Sprintf("127.0.0.1:%d", ports[1])
	}
}

// Client returns a client of endpoints, closed at the end of the test.
func Client(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second,
		Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
