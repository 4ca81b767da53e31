// Package etcdtest starts real etcd servers for tests: embedded
// (go.etcd.io/etcd/server/v3/embed) on 127.0.0.1 with free ports and data in
// the test's temp dir, with heartbeat and election timeouts short enough
// for lease TTLs of 1 or 2 seconds. Only tests import it, so no command
// links the etcd server.
package etcdtest
