#!/usr/bin/env bash
# CI for the etcd module (its own go.mod: etcd's client and, for tests, its
# embedded server). .ci/run calls it as: bash etcd/ci.sh
# Nothing to install: the tests start their own etcd servers on 127.0.0.1.
# About 3 minutes on a 2-core machine with a warm module cache, most of it
# compiling etcd.
set -euo pipefail
cd "$(dirname "$0")"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

step() { printf '\n=== etcd: %s\n' "$*"; }

step "go vet ./... (linux, and darwin for the portable build)"
go vet ./...
GOOS=darwin CGO_ENABLED=0 go vet ./...

step "go test ./... (embedded single node, 3-member cluster, SIGKILL and SIGSTOP of holders)"
go test -count=1 -timeout 15m ./...

step "go test -race (the package's own concurrency, single node)"
go test -count=1 -race -timeout 15m -run 'TestLockUnlockErrors|TestOwnerDied|TestLockWaits|TestLostLease|TestGuard|TestAdopt|TestBadInput' .

step "builds: CGO_ENABLED=0, arm64, darwin"
CGO_ENABLED=0 go build ./...
GOARCH=arm64 CGO_ENABLED=0 go build ./...
GOOS=darwin CGO_ENABLED=0 go build ./...

step "benchmarks compile and run once"
go test -count=1 -short -run '^$' -bench . -benchtime 1x ./... >/dev/null
