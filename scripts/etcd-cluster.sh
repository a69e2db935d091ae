#!/usr/bin/env bash
# A 3-member etcd cluster on 127.0.0.1 for the etcd store's tests (Debian's etcd-server 3.4).
#
#   scripts/etcd-cluster.sh start        start m1..m3 (fresh data in $ETCD_CLUSTER_DIR), wait until healthy
#   scripts/etcd-cluster.sh stop         stop every member (by recorded PID) and delete the data
#   scripts/etcd-cluster.sh kill N       SIGKILL member N (1..3)
#   scripts/etcd-cluster.sh restart N    start member N again on its data
#   scripts/etcd-cluster.sh leader       print the number of the current leader
#   scripts/etcd-cluster.sh url          print the store URL (etcd://127.0.0.1:2379,...)
#
# Client ports $ETCD_CLIENT_PORTS (default 2379 12379 22379), peer ports $ETCD_PEER_PORTS
# (default 2380 12380 22380). Data, logs and PIDs live in $ETCD_CLUSTER_DIR
# (default ${TMPDIR:-/tmp}/membership-etcd-cluster): m<N>/ (data), m<N>.log, m<N>.pid.
# History older than $ETCD_COMPACTION_RETENTION (default 1m) is compacted by the members.
set -euo pipefail
# shellcheck source=scripts/ports.sh
. "$(dirname "$0")/ports.sh"

DIR=${ETCD_CLUSTER_DIR:-${TMPDIR:-/tmp}/membership-etcd-cluster}
read -r -a CLIENT <<<"${ETCD_CLIENT_PORTS:-2379 12379 22379}"
read -r -a PEER <<<"${ETCD_PEER_PORTS:-2380 12380 22380}"
HEALTH_WAIT_S=${ETCD_HEALTH_WAIT_S:-30}
# etcd keeps every revision of every key until it is compacted, and a key written by every
# commit (the registry's commit marker, the counters, the heartbeats) gets slower to read and
# compare as its history grows: measured here, 20,000 placements took 3.9 s on a fresh cluster
# and 18 s after a few runs, 4.0 s again after one compaction. So the members compact their
# history themselves, keeping $ETCD_COMPACTION_RETENTION of it (etcd's periodic mode); a
# registry cache whose watch lags past it loads the registry again (drivers/README.md).
COMPACTION_RETENTION=${ETCD_COMPACTION_RETENTION:-1m}
export ETCDCTL_API=3

initial_cluster() {
  local parts=()
  for i in 1 2 3; do parts+=("m$i=http://127.0.0.1:${PEER[$((i - 1))]}"); done
  (IFS=,; echo "${parts[*]}")
}

endpoints() {
  local parts=()
  for i in 1 2 3; do parts+=("127.0.0.1:${CLIENT[$((i - 1))]}"); done
  (IFS=,; echo "${parts[*]}")
}

# Running, and not a zombie (a killed member's parent may not reap it at once).
alive() {
  [ -f "$DIR/m$1.pid" ] || return 1
  local pid; pid=$(cat "$DIR/m$1.pid")
  kill -0 "$pid" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

start_member() {
  local i=$1 state=$2 c=${CLIENT[$(($1 - 1))]} p=${PEER[$(($1 - 1))]}
  if alive "$i"; then echo "m$i is already running (pid $(cat "$DIR/m$i.pid"))"; return; fi
  etcd --name "m$i" --data-dir "$DIR/m$i" \
    --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
    --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
    --initial-cluster "$(initial_cluster)" --initial-cluster-token membership-tests \
    --initial-cluster-state "$state" \
    --auto-compaction-mode=periodic --auto-compaction-retention="$COMPACTION_RETENTION" \
    >>"$DIR/m$i.log" 2>&1 &
  echo $! >"$DIR/m$i.pid"
}

wait_healthy() {
  local deadline=$((SECONDS + HEALTH_WAIT_S))
  until etcdctl --endpoints="$(endpoints)" --command-timeout=2s put /membership-health ok >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "etcd cluster not healthy after ${HEALTH_WAIT_S}s; logs in $DIR" >&2
      tail -n 5 "$DIR"/m*.log >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

stop_all() {
  for i in 1 2 3; do
    if alive "$i"; then kill "$(cat "$DIR/m$i.pid")" 2>/dev/null || true; fi
  done
  for i in 1 2 3; do
    if [ -f "$DIR/m$i.pid" ]; then
      local pid; pid=$(cat "$DIR/m$i.pid")
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
}

case "${1:-}" in
  start)
    if [ -d "$DIR" ]; then stop_all; rm -rf "$DIR"; fi
    mkdir -p "$DIR"
    check_ports "etcd cluster (ETCD_CLIENT_PORTS / ETCD_PEER_PORTS)" "${CLIENT[@]}" "${PEER[@]}"
    for i in 1 2 3; do start_member "$i" new; done
    wait_healthy
    # A port taken by another etcd would let the health check pass against it: every member
    # of ours must be running.
    for i in 1 2 3; do
      if ! alive "$i"; then
        echo "m$i exited (port taken? set ETCD_CLIENT_PORTS / ETCD_PEER_PORTS); log: $DIR/m$i.log" >&2
        tail -n 3 "$DIR/m$i.log" >&2 || true
        exit 1
      fi
    done
    echo "etcd cluster up: $(endpoints) (data, logs and PIDs in $DIR)"
    ;;
  stop)
    if [ -d "$DIR" ]; then stop_all; rm -rf "$DIR"; fi
    echo "etcd cluster stopped"
    ;;
  kill)
    i=${2:?member number 1..3}
    if alive "$i"; then kill -9 "$(cat "$DIR/m$i.pid")"; fi
    for _ in $(seq 50); do alive "$i" || break; sleep 0.1; done
    ;;
  restart)
    i=${2:?member number 1..3}
    start_member "$i" existing
    # Wait (bounded) until the member answers on its client port.
    deadline=$((SECONDS + HEALTH_WAIT_S))
    until etcdctl --endpoints="127.0.0.1:${CLIENT[$((i - 1))]}" --command-timeout=1s endpoint status >/dev/null 2>&1; do
      if [ $SECONDS -ge $deadline ]; then echo "m$i did not come back within ${HEALTH_WAIT_S}s" >&2; exit 1; fi
      sleep 0.1
    done
    ;;
  leader)
    for i in 1 2 3; do
      status=$(etcdctl --endpoints="127.0.0.1:${CLIENT[$((i - 1))]}" --command-timeout=1s endpoint status -w json 2>/dev/null) || continue
      member=$(echo "$status" | sed -n 's/.*"member_id":\([0-9]*\).*/\1/p')
      leader=$(echo "$status" | sed -n 's/.*"leader":\([0-9]*\).*/\1/p')
      if [ -n "$member" ] && [ "$member" = "$leader" ]; then echo "$i"; exit 0; fi
    done
    echo "no leader" >&2
    exit 1
    ;;
  url)
    echo "etcd://$(endpoints)"
    ;;
  *)
    sed -n '2,13p' "$0"
    exit 2
    ;;
esac
