#!/usr/bin/env bash
# A single-member etcd on 127.0.0.1 with TLS, client-certificate authentication and roles
# (issue 21, point 2): the store as a production cluster should run it, for the TLS tests and
# for trying a secured cluster by hand (README, "A secured cluster").
#
#   scripts/etcd-tls.sh start      certificates, the member, users and roles; wait until healthy
#   scripts/etcd-tls.sh stop       stop the member and delete its data and certificates
#   scripts/etcd-tls.sh url NAME   the store URL for the client certificate NAME (n1, operator, ...)
#   scripts/etcd-tls.sh certs      print the certificates' directory
#
# Certificates (from `membership certs`, a throwaway CA) live in $ETCD_TLS_DIR/certs: ca.pem,
# etcd.pem (the member: 127.0.0.1 and localhost), root.pem (setup only), one per node of
# $ETCD_TLS_NODES (default n1 n2 n3 n4 n5: each is the node's identity for its probes and its
# etcd user), operator.pem (for `membership status`, `watch`, `migrate`) and outsider.pem.
# etcd takes a client certificate's common name as its user: users n1..n5 and operator have
# the role `membership`, read and write on $ETCD_TLS_PREFIX (default /membership/) and nothing
# else; user outsider has the role `other`, on /other/ only. A client without a certificate of
# the CA is refused at the handshake.
#
# Client port $ETCD_TLS_CLIENT_PORT (default 23379), peer port $ETCD_TLS_PEER_PORT (default
# 23380); data, log and PID in $ETCD_TLS_DIR (default ${TMPDIR:-/tmp}/membership-etcd-tls).
# `membership certs` runs as $MEMBERSHIP_BIN when it is set (scripts/etcd-tests.sh sets the binary
# it built), else through `cargo run --features etcd`, which is given $CARGO_FLAGS (e.g. --locked).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ports.sh
. scripts/ports.sh

DIR=${ETCD_TLS_DIR:-${TMPDIR:-/tmp}/membership-etcd-tls}
CLIENT=${ETCD_TLS_CLIENT_PORT:-23379}
PEER=${ETCD_TLS_PEER_PORT:-23380}
NODES=${ETCD_TLS_NODES:-n1 n2 n3 n4 n5}
PREFIX=${ETCD_TLS_PREFIX:-/membership/}
HEALTH_WAIT_S=${ETCD_HEALTH_WAIT_S:-30}
CERTS=$DIR/certs
export ETCDCTL_API=3

# The `membership` command line.
membership() {
  if [ -n "${MEMBERSHIP_BIN:-}" ]; then
    "$MEMBERSHIP_BIN" "$@"
  else
    # shellcheck disable=SC2086 # CARGO_FLAGS is a list of words.
    cargo run -q -p membership --features etcd --bin membership ${CARGO_FLAGS:-} -- "$@"
  fi
}

# etcdctl as `root` (the setup's user).
ctl() {
  etcdctl --endpoints="https://127.0.0.1:$CLIENT" --cacert="$CERTS/ca.pem" \
    --cert="$CERTS/root.pem" --key="$CERTS/root.key" --command-timeout=5s "$@"
}

alive() {
  [ -f "$DIR/etcd.pid" ] || return 1
  local pid; pid=$(cat "$DIR/etcd.pid")
  kill -0 "$pid" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

stop_member() {
  if [ -f "$DIR/etcd.pid" ]; then
    local pid; pid=$(cat "$DIR/etcd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
}

case "${1:-}" in
  start)
    if [ -d "$DIR" ]; then stop_member; rm -rf "$DIR"; fi
    check_ports "TLS etcd (ETCD_TLS_CLIENT_PORT / ETCD_TLS_PEER_PORT)" "$CLIENT" "$PEER"
    mkdir -p "$CERTS"
    membership certs --dir "$CERTS" --host 127.0.0.1 --host localhost etcd >/dev/null
    # shellcheck disable=SC2086 # NODES is a list of words.
    membership certs --dir "$CERTS" root operator outsider $NODES >/dev/null
    etcd --name tls1 --data-dir "$DIR/data" \
      --listen-client-urls "https://127.0.0.1:$CLIENT" --advertise-client-urls "https://127.0.0.1:$CLIENT" \
      --listen-peer-urls "https://127.0.0.1:$PEER" --initial-advertise-peer-urls "https://127.0.0.1:$PEER" \
      --initial-cluster "tls1=https://127.0.0.1:$PEER" --initial-cluster-token membership-tls \
      --initial-cluster-state new \
      --cert-file "$CERTS/etcd.pem" --key-file "$CERTS/etcd.key" \
      --trusted-ca-file "$CERTS/ca.pem" --client-cert-auth \
      --peer-cert-file "$CERTS/etcd.pem" --peer-key-file "$CERTS/etcd.key" \
      --peer-trusted-ca-file "$CERTS/ca.pem" --peer-client-cert-auth \
      >>"$DIR/etcd.log" 2>&1 &
    echo $! >"$DIR/etcd.pid"
    deadline=$((SECONDS + HEALTH_WAIT_S))
    until ctl endpoint health >/dev/null 2>&1; do
      if ! alive; then
        echo "TLS etcd exited (port taken? set ETCD_TLS_CLIENT_PORT / ETCD_TLS_PEER_PORT); log: $DIR/etcd.log" >&2
        tail -n 5 "$DIR/etcd.log" >&2 || true
        exit 1
      fi
      if [ $SECONDS -ge $deadline ]; then
        echo "TLS etcd not healthy after ${HEALTH_WAIT_S}s; log: $DIR/etcd.log" >&2
        tail -n 5 "$DIR/etcd.log" >&2 || true
        exit 1
      fi
      sleep 0.2
    done
    {
      ctl user add root --no-password
      ctl user grant-role root root
      ctl role add membership
      ctl role grant-permission membership --prefix=true readwrite "$PREFIX"
      for user in operator $NODES; do
        ctl user add "$user" --no-password
        ctl user grant-role "$user" membership
      done
      ctl role add other
      ctl role grant-permission other --prefix=true readwrite /other/
      ctl user add outsider --no-password
      ctl user grant-role outsider other
      ctl auth enable
    } >>"$DIR/setup.log"
    echo "TLS etcd up: https://127.0.0.1:$CLIENT, roles on $PREFIX (certificates in $CERTS)"
    ;;
  stop)
    if [ -d "$DIR" ]; then stop_member; rm -rf "$DIR"; fi
    echo "TLS etcd stopped"
    ;;
  url)
    name=${2:?the client certificate name: n1, operator, ...}
    echo "etcd://127.0.0.1:$CLIENT${PREFIX%/}?ca=$CERTS/ca.pem&cert=$CERTS/$name.pem&key=$CERTS/$name.key"
    ;;
  certs)
    echo "$CERTS"
    ;;
  *)
    sed -n '2,22p' "$0"
    exit 2
    ;;
esac
