#!/usr/bin/env bash
# Starts a local 3-node groupcached cluster on loopback from a freshly built binary, waits until
# every node sees all three members, prints example curl commands, and keeps running until
# Ctrl-C, which stops the nodes gracefully.
#
#   scripts/cluster.sh            # run until Ctrl-C
#   scripts/cluster.sh --smoke    # start, check that the cluster answers and fills once, stop
#
# Every node runs the embedded config.yaml (group "files" over ./examples/data) with its own
# name and ports. Settings, from the environment:
#   HTTP_BASE=8081     HTTP ports HTTP_BASE, HTTP_BASE+1, HTTP_BASE+2
#   GOSSIP_BASE=7947   gossip ports GOSSIP_BASE .. GOSSIP_BASE+2
#   NODES=3            how many nodes
#   WAIT_SECONDS=30    how long to wait for the nodes to see each other
#   GROUPCACHED_BIN    a groupcached binary to run instead of building one
# GROUPCACHED_* variables reach every node (GROUPCACHED_PRESET=lan, GROUPCACHED_LOG_LEVEL=debug).
# Exit status: 0 after a clean stop; 1 if a node failed to start, to converge or to answer.
set -euo pipefail

cd "$(dirname "$0")/.."

HTTP_BASE="${HTTP_BASE:-8081}"
GOSSIP_BASE="${GOSSIP_BASE:-7947}"
NODES="${NODES:-3}"
WAIT_SECONDS="${WAIT_SECONDS:-30}"
SMOKE=0
case "${1:-}" in
  --smoke) SMOKE=1 ;;
  "") ;;
  -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac

command -v curl >/dev/null || { echo "cluster.sh needs curl" >&2; exit 1; }
SETSID=""
command -v setsid >/dev/null && SETSID=setsid

WORK="$(mktemp -d "${TMPDIR:-/tmp}/groupcached-cluster.XXXXXX")"
PIDS=()

log() { printf '%s\n' "$*" >&2 || true; }

show_logs() {
  for i in $(seq 1 "$NODES"); do
    log "---- node-$i log (last 20 lines): $WORK/node-$i.log"
    tail -n 20 "$WORK/node-$i.log" >&2 || true
  done
}

stop_nodes() {
  local pid status=0
  [ "${#PIDS[@]}" -eq 0 ] && return 0
  log "stopping ${#PIDS[@]} nodes"
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" || status=$?; done
  PIDS=()
  return "$status"
}

fail() {
  log "cluster.sh: $*"
  show_logs
  stop_nodes || true
  exit 1
}

cleanup() {
  stop_nodes || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'stop_nodes; log "stopped"; exit 0' INT TERM
# A reader that goes away (Ctrl-C also ends `| tee`) must not kill the script before it has
# stopped its nodes: writes to a closed pipe then fail instead.
trap '' PIPE

BIN="${GROUPCACHED_BIN:-}"
if [ -z "$BIN" ]; then
  log "building groupcached"
  go build -o "$WORK/groupcached" .
  BIN="$WORK/groupcached"
fi

http_addr() { echo "127.0.0.1:$((HTTP_BASE + $1 - 1))"; }
gossip_addr() { echo "127.0.0.1:$((GOSSIP_BASE + $1 - 1))"; }

for i in $(seq 1 "$NODES"); do
  args=(-name "node-$i" -http "$(http_addr "$i")" -gossip "$(gossip_addr "$i")")
  [ "$i" -gt 1 ] && args+=(-join "$(gossip_addr 1)")
  # setsid: a Ctrl-C reaches only this script, which then stops the nodes once, gracefully.
  $SETSID "$BIN" "${args[@]}" >"$WORK/node-$i.log" 2>&1 &
  PIDS+=("$!")
  log "node-$i: http $(http_addr "$i"), gossip $(gossip_addr "$i"), log $WORK/node-$i.log"
  if [ "$i" -eq 1 ]; then
    # The others join node-1: it must be listening for gossip first.
    deadline=$((SECONDS + WAIT_SECONDS))
    until curl -fsS --max-time 2 "http://$(http_addr 1)/readyz" >/dev/null 2>&1; do
      kill -0 "${PIDS[0]}" 2>/dev/null || fail "node-1 exited during start-up"
      [ "$SECONDS" -lt "$deadline" ] || fail "node-1 is not ready after ${WAIT_SECONDS}s"
      sleep 0.1
    done
  fi
done

# alive_members prints how many members a node sees alive; 0 while it does not answer.
alive_members() {
  curl -fsS --max-time 2 "http://$(http_addr "$1")/cluster" 2>/dev/null | grep -o '"state":"alive"' | wc -l || true
}

deadline=$((SECONDS + WAIT_SECONDS))
for i in $(seq 1 "$NODES"); do
  until [ "$(alive_members "$i")" -eq "$NODES" ]; do
    for pid in "${PIDS[@]}"; do
      kill -0 "$pid" 2>/dev/null || fail "a node exited during start-up"
    done
    [ "$SECONDS" -lt "$deadline" ] || fail "node-$i does not see $NODES members after ${WAIT_SECONDS}s"
    sleep 0.2
  done
done
log "all $NODES nodes see $NODES members"

KEY="$(cd examples/data && find . -type f | sed 's|^\./||' | sort | head -n 1)"
[ -n "$KEY" ] || fail "examples/data has no file to serve"
KEY_ESCAPED="$(printf '%s' "$KEY" | sed 's|/|%2F|g; s| |%20|g')"

if [ "$SMOKE" -eq 1 ]; then
  want="$(cat "examples/data/$KEY")"
  for i in $(seq 1 "$NODES"); do
    got="$(curl -fsS --max-time 10 "http://$(http_addr "$i")/groups/files/keys/$KEY_ESCAPED")" \
      || fail "GET $KEY on node-$i failed"
    [ "$got" = "$want" ] || fail "GET $KEY on node-$i answered something else than examples/data/$KEY"
  done
  loads=0
  for i in $(seq 1 "$NODES"); do
    n="$(curl -fsS --max-time 2 "http://$(http_addr "$i")/groups" | grep -o '"local_loads":[0-9]*' | head -n 1 | cut -d: -f2)"
    loads=$((loads + ${n:-0}))
  done
  [ "$loads" -eq 1 ] || fail "the key asked on $NODES nodes was loaded $loads times, want 1"
  log "smoke check passed: every node answered $KEY, loaded once in the cluster"
  stop_nodes || fail "a node did not stop cleanly"
  log "stopped"
  exit 0
fi

cat <<EOF

groupcached is running: $NODES nodes on 127.0.0.1, HTTP ports $HTTP_BASE-$((HTTP_BASE + NODES - 1)).

  # a value, from any node (the owner loads it once; the others ask the owner)
  curl -i http://$(http_addr 1)/groups/files/keys/$KEY_ESCAPED
  curl -i http://$(http_addr 2)/groups/files/keys/$KEY_ESCAPED

  # the members and their share of the ring; the groups and their stats
  curl -s http://$(http_addr 1)/cluster
  curl -s http://$(http_addr 1)/groups

  # remove the key on every node; purge the group
  curl -i -X DELETE http://$(http_addr 3)/groups/files/keys/$KEY_ESCAPED
  curl -i -X DELETE http://$(http_addr 3)/groups/files

  # Prometheus metrics
  curl -s http://$(http_addr 1)/metrics | grep groupcached_

Press Ctrl-C to stop the cluster.
EOF

wait
