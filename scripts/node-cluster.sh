#!/usr/bin/env bash
# A cluster of `membership node` processes on loopback, one per node, against a running etcd
# (scripts/etcd-cluster.sh start). Each node gets a configuration file, its probe address
# 127.0.0.1:$((PROBE_BASE + i)) and its metrics address 127.0.0.1:$((METRICS_BASE + i)), and
# logs JSON lines to $NODE_CLUSTER_DIR/n<i>.log.
#
#   scripts/node-cluster.sh start [N]   build the binary, start nodes 1..N (default 5), wait until each is ready
#   scripts/node-cluster.sh stop        SIGTERM every node: each leaves (its actors handed off), then exits
#   scripts/node-cluster.sh kill I      SIGKILL node I (a crash: the others declare it failed)
#   scripts/node-cluster.sh status      `membership status` of the registry
#
# The store URL is $STORE_URL, or etcd-cluster.sh's URL with the prefix /demo. Extra cargo
# arguments: $CARGO_ARGS (e.g. --locked).
#
# With TLS=1, against scripts/etcd-tls.sh's secured etcd instead: node i reaches etcd with its
# own certificate (its etcd user n<i>, whose role covers /membership/ only) and proves its
# identity with the same certificate on its probes (tls_ca, tls_cert, tls_key); `status` reads
# with the operator's certificate.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${NODE_CLUSTER_DIR:-${TMPDIR:-/tmp}/membership-node-cluster}
PROBE_BASE=${PROBE_BASE:-17000}
METRICS_BASE=${METRICS_BASE:-19000}
READY_WAIT_S=${READY_WAIT_S:-60}
STOP_WAIT_S=${STOP_WAIT_S:-60}
BIN=target/release/membership

store_url() { # [client certificate name, with TLS=1]
  if [[ ${TLS:-0} == 1 ]]; then
    scripts/etcd-tls.sh url "${1:-operator}"
  elif [[ -n ${STORE_URL:-} ]]; then
    echo "$STORE_URL"
  else
    echo "$(scripts/etcd-cluster.sh url)/demo"
  fi
}

ready() { # node index
  curl -sf "http://127.0.0.1:$((METRICS_BASE + $1))/readyz" >/dev/null 2>&1
}

start() {
  local count=${1:-5}
  # shellcheck disable=SC2086
  cargo build --release -q -p membership --features etcd --bin membership ${CARGO_ARGS:-}
  mkdir -p "$DIR"
  local url certs
  for i in $(seq 1 "$count"); do
    url=$(store_url "n$i")
    cat >"$DIR/n$i.toml" <<EOF
store = "$url"
node = $i
nodes = $count
probe_address = "127.0.0.1:$((PROBE_BASE + i))"
metrics_address = "127.0.0.1:$((METRICS_BASE + i))"
log_format = "json"
EOF
    if [[ ${TLS:-0} == 1 ]]; then
      certs=$(scripts/etcd-tls.sh certs)
      cat >>"$DIR/n$i.toml" <<EOF
tls_ca = "$certs/ca.pem"
tls_cert = "$certs/n$i.pem"
tls_key = "$certs/n$i.key"
EOF
    fi
    "$BIN" node --config "$DIR/n$i.toml" >"$DIR/n$i.log" 2>&1 &
    echo $! >"$DIR/n$i.pid"
  done
  for i in $(seq 1 "$count"); do
    local waited=0
    until ready "$i"; do
      if ! kill -0 "$(cat "$DIR/n$i.pid")" 2>/dev/null; then
        echo "n$i exited; log: $DIR/n$i.log" >&2
        tail -5 "$DIR/n$i.log" >&2
        return 1
      fi
      if ((waited >= READY_WAIT_S * 10)); then
        echo "n$i not ready after ${READY_WAIT_S} s; log: $DIR/n$i.log" >&2
        return 1
      fi
      sleep 0.1
      waited=$((waited + 1))
    done
    echo "n$i ready: pid $(cat "$DIR/n$i.pid"), metrics http://127.0.0.1:$((METRICS_BASE + i))/metrics"
  done
  echo "store $(store_url); logs and configurations in $DIR"
}

stop() {
  local status=0
  for pidfile in "$DIR"/n*.pid; do
    [[ -e $pidfile ]] || continue
    local pid
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pidfile in "$DIR"/n*.pid; do
    [[ -e $pidfile ]] || continue
    local pid name waited=0
    pid=$(cat "$pidfile")
    name=$(basename "$pidfile" .pid)
    while kill -0 "$pid" 2>/dev/null && ((waited < STOP_WAIT_S * 10)); do
      sleep 0.1
      waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "$name (pid $pid) still running after ${STOP_WAIT_S} s: killed" >&2
      kill -KILL "$pid" 2>/dev/null || true
      status=1
    else
      echo "$name stopped: $(grep -o '"message":"[^"]*"' "$DIR/$name.log" | tail -1)"
    fi
    rm -f "$pidfile"
  done
  return $status
}

case ${1:-} in
  start) start "${2:-5}" ;;
  stop) stop ;;
  kill)
    kill -KILL "$(cat "$DIR/n${2:?which node}.pid")"
    rm -f "$DIR/n$2.pid"
    echo "n$2 killed"
    ;;
  status) "$BIN" status --store "$(store_url)" ;;
  *)
    echo "usage: $0 start [N] | stop | kill I | status" >&2
    exit 2
    ;;
esac
