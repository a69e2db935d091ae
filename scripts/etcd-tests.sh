#!/usr/bin/env bash
# The etcd store's tests against a real 3-member etcd cluster on 127.0.0.1: starts the cluster
# (scripts/etcd-cluster.sh), runs the store conformance suite, the fault tests (members killed
# and restarted under 5 running nodes) and the one-process-per-node test on it; starts a
# single-member etcd with TLS, client certificates and roles (scripts/etcd-tls.sh) and runs the
# least-privilege test on it; and stops both on exit, also when a test fails. Needs Debian's etcd-server, etcd-client and
# protobuf-compiler. Extra arguments go to every cargo command (e.g. --locked).
#
#   scripts/etcd-tests.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cluster=scripts/etcd-cluster.sh
# Everything is compiled first (the test binaries in one cargo command, so they build side by side
# on every core, and no etcd member runs idle meanwhile); the steps below give cargo the same
# features and targets, so they only run what is built. The `membership certs` command of
# scripts/etcd-tls.sh runs the binary built here ($MEMBERSHIP_BIN: `cargo run` would build it
# once more, with other features, about 30 s).
echo "== building the tests, the examples and the binary with the etcd feature"
tests=(--lib --test format_v1 --test etcd_tls --test store_conformance --test etcd_faults
  --test node_binary --test processes)
cargo test -p membership --features etcd "$@" --no-run "${tests[@]}"
cargo build -p membership --features etcd "$@" --example node --example load --example cluster \
  --bin membership
export MEMBERSHIP_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/membership"
export ETCD_CLUSTER_DIR=${ETCD_CLUSTER_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/membership-etcd.XXXXXX")}
export ETCD_TLS_DIR=${ETCD_TLS_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/membership-etcd-tls.XXXXXX")}
trap '"$cluster" stop; scripts/etcd-tls.sh stop' EXIT
"$cluster" start
url=$("$cluster" url)
export ETCD_ENDPOINTS=${url#etcd://}
export ETCD_CLUSTER_SCRIPT="$PWD/$cluster"

echo "== the library's unit tests with the etcd feature (the key-value layout, the cache, the upgrade from format version 1)"
cargo test -p membership --features etcd "$@" --lib

echo "== etcd: a stored format-version-1 registry migrated by 'membership migrate'"
cargo test -p membership --features etcd "$@" --test format_v1

echo "== etcd with TLS and roles: only the cluster's users reach the registry; a refusal writes nothing"
scripts/etcd-tls.sh start
export ETCD_TLS_ENDPOINT=127.0.0.1:${ETCD_TLS_CLIENT_PORT:-23379}
ETCD_TLS_CERTS=$(scripts/etcd-tls.sh certs)
export ETCD_TLS_CERTS
cargo test -p membership --features etcd "$@" --test etcd_tls
scripts/etcd-tls.sh stop

echo "== etcd: the store conformance suite"
cargo test -p membership --features etcd "$@" --test store_conformance -- --test-threads 2

echo "== etcd: fault tests (5 nodes on the runtime; members killed and restarted)"
cargo test -p membership --features etcd "$@" --test etcd_faults -- --test-threads 1

echo "== etcd: the operator's binary, membership node (configuration, readiness, SIGTERM leaves)"
cargo test -p membership --features etcd "$@" --test node_binary

echo "== etcd: one node per OS process (kill -9 the primary, SIGSTOP past the lease)"
cargo test -p membership --features etcd "$@" --test processes -- --test-threads 1
echo "== etcd: scale in short form (the full-size runs are commands in the README, 'Performance')"
cargo run -q -p membership --features etcd "$@" --example load -- --nodes 12 --processes 2 --seconds 5 --store "$url"
cargo run -q -p membership --features etcd "$@" --example cluster -- --nodes 10 --actors 2000 --failovers 3 --store "$url"
