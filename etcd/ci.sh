#!/usr/bin/env bash
# CI for the etcd module (its own go.mod: etcd's client and, for tests, its
# embedded server). .ci/run calls it as: bash etcd/ci.sh
# Nothing to install: the tests start their own etcd servers on 127.0.0.1.
# About 2 minutes on a 2-core machine with a warm build cache; a cold one
# adds the compiling of etcd (plain, -race, arm64, darwin): 5 to 10 minutes.
# A longer kill soak: ETCDLOCK_KILLS=200 go test -run TestKillHolders .
set -euo pipefail
cd "$(dirname "$0")"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

step() { printf '\n=== etcd: %s\n' "$*"; }

step "go vet ./... (linux, and darwin for the portable build)"
go vet ./...
GOOS=darwin CGO_ENABLED=0 go vet ./...

step "go test ./... (embedded single node, 3-member cluster, SIGKILL and SIGSTOP of holders)"
go test -count=1 -timeout 15m ./...

step "go test -race ./... (helper processes and cluster members are race builds too)"
go test -count=1 -race -timeout 15m ./...

step "builds: CGO_ENABLED=0, arm64, darwin"
CGO_ENABLED=0 go build ./...
GOARCH=arm64 CGO_ENABLED=0 go build ./...
GOOS=darwin CGO_ENABLED=0 go build ./...

step "benchmarks compile and run once"
go test -count=1 -short -run '^$' -bench . -benchtime 1x ./... >/dev/null
