#!/usr/bin/env bash
# Load test of the peer hop: three groupcached processes on loopback (local preset, hot cache
# off, so every GET of a key another node owns crosses to that owner), and wrk against node 1
# alternating two key sets in one run: keys node 1 owns (a local hit) and keys the other two
# nodes own (one peer hop each). For each round it prints requests/s and p50 latency of both
# sets and the ratio peer/local, then node 1's CPU time per request for each set (from /proc).
#
#   scripts/bench-peerhop.sh                        # 3 rounds x 10 s, wrk -t1 -c32
#   ROUNDS=5 DURATION=5s CONNECTIONS=64 scripts/bench-peerhop.sh
#   GROUPCACHED_BIN=/path/to/groupcached scripts/bench-peerhop.sh   # measure another build
#   NICE=-10 scripts/bench-peerhop.sh               # as root: keep other work off the cores
#   SECRET=1 scripts/bench-peerhop.sh               # with a cluster secret: authenticated peer
#                                                   # wire, every frame MAC'd (and gossip encrypted)
#
# The three nodes use ports 127.0.0.1:0 chosen by the kernel; traffic goes to 127.0.0.1 only,
# every wrk run is bounded in time and every node stops by itself (SIGTERM at exit).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-1}"
CONNECTIONS="${CONNECTIONS:-32}"
VALUE_BYTES="${VALUE_BYTES:-1024}"
KEYS="${KEYS:-300}"
WARMUP="${WARMUP:-2s}"
NICE="${NICE:-0}"
SECRET="${SECRET:-0}"

if ! command -v wrk >/dev/null 2>&1; then
  echo "== installing wrk"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq wrk >/dev/null
fi
command -v curl >/dev/null || { echo "bench-peerhop.sh needs curl" >&2; exit 1; }

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

BIN="${GROUPCACHED_BIN:-}"
if [ -z "$BIN" ]; then
  echo "== building groupcached"
  CGO_ENABLED=0 go build -o "$work/groupcached" .
  BIN="$work/groupcached"
fi

mkdir -p "$work/data"
head -c "$VALUE_BYTES" /dev/zero | tr '\0' 'v' >"$work/value"
for i in $(seq "$KEYS"); do cp "$work/value" "$work/data/k$i"; done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null; }

declare -a http gossip
for i in 1 2 3; do
  http[$i]="127.0.0.1:$(free_port)"
  gossip[$i]="127.0.0.1:$(free_port)"
  cat >"$work/node-$i.yaml" <<EOF
node:
  name: node-$i
  http_addr: ${http[$i]}
  gossip_addr: ${gossip[$i]}
  join: [${gossip[1]}]
  preset: local
  shutdown_delay: 0s
  log_level: warn
groups:
  - name: bench
    cache_bytes: 64MiB
    hot_cache_fraction: 0
    loader: {type: file, root: $work/data}
EOF
done
if [ "$SECRET" = 1 ]; then
  GROUPCACHED_SECRET_KEY="$(head -c 32 /dev/urandom | base64)"
  export GROUPCACHED_SECRET_KEY
  echo "== with a cluster secret"
else
  unset GROUPCACHED_SECRET_KEY
fi
for i in 1 2 3; do
  nice -n "$NICE" "$BIN" -config "$work/node-$i.yaml" 2>"$work/node-$i.log" &
  pids+=("$!")
  eval "pid$i=$!"
done

echo "== waiting for 3 members"
for _ in $(seq 300); do
  ok=1
  for i in 1 2 3; do
    n="$(curl -fsS "http://${http[$i]}/cluster" 2>/dev/null | grep -o '"name"' | wc -l || true)"
    [ "${n:-0}" -ge 3 ] || ok=0
  done
  [ "$ok" = 1 ] && break
  sleep 0.1
done
[ "$ok" = 1 ] || { echo "the nodes did not converge" >&2; tail -n 20 "$work"/node-*.log >&2; exit 1; }

# Warm every key through node 1, then sort the keys by what node 1 answers on a second read:
# "main" means node 1 owns the key, "peer" means another node does.
echo "== warming $KEYS keys and sorting them by owner"
: >"$work/local.keys"; : >"$work/peer.keys"
for i in $(seq "$KEYS"); do
  curl -fsS -o /dev/null "http://${http[1]}/groups/bench/keys/k$i"
  src="$(curl -fsS -o /dev/null -D - "http://${http[1]}/groups/bench/keys/k$i" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-groupcached-source" {print $2}')"
  case "$src" in
    main) echo "k$i" >>"$work/local.keys" ;;
    peer) echo "k$i" >>"$work/peer.keys" ;;
    *) echo "key k$i answered from ${src:-nowhere}; want main or peer" >&2; exit 1 ;;
  esac
done
echo "local keys: $(wc -l <"$work/local.keys"), peer keys: $(wc -l <"$work/peer.keys")"

for set in local peer; do
  {
    echo 'local paths = {'
    while read -r k; do echo "  \"/groups/bench/keys/$k\","; done <"$work/$set.keys"
    echo '}'
    echo 'local i = 0'
    echo 'request = function() i = i % #paths + 1; return wrk.format("GET", paths[i]) end'
  } >"$work/$set.lua"
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"

run() {
  local set="$1" before after out
  before="$(cpu_ticks "$pid1")"
  out="$(timeout 120 wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/$set.lua" "http://${http[1]}")"
  after="$(cpu_ticks "$pid1")"
  echo "$out" | awk -v set="$set" -v ticks="$((after - before))" -v hz="$hz" '
    /Requests\/sec/ {rps = $2}
    /requests in/ {n = $1}
    $1 == "50%" {p50 = $2}
    /Non-2xx/ {bad = $NF}
    END {printf "%s %s %s %.1f %s\n", set, rps, p50, (n > 0 ? ticks / hz * 1e6 / n : 0), (bad == "" ? 0 : bad)}'
}

echo "== wrk -t$THREADS -c$CONNECTIONS -d$DURATION per set, $ROUNDS rounds, value of $VALUE_BYTES bytes"
timeout 60 wrk -t1 -c4 -d"$WARMUP" -s "$work/local.lua" "http://${http[1]}" >/dev/null
timeout 60 wrk -t1 -c4 -d"$WARMUP" -s "$work/peer.lua" "http://${http[1]}" >/dev/null
printf "%-6s %12s %10s %12s %10s %10s %14s %14s\n" round local_rps local_p50 peer_rps peer_p50 peer/local local_cpu_us peer_cpu_us
: >"$work/rounds"
for round in $(seq "$ROUNDS"); do
  l="$(run local)"; p="$(run peer)"
  echo "$l $p" >>"$work/rounds"
  echo "$round $l $p" | awk '{
    if ($6 != 0 || $11 != 0) { print "non-2xx answers: local " $6 ", peer " $11 > "/dev/stderr"; exit 1 }
    printf "%-6s %12.0f %10s %12.0f %10s %10.3f %14s %14s\n", $1, $3, $4, $8, $9, $8 / $3, $5, $10}'
done
awk '{l += $2; p += $7; lc += $4; pc += $9} END {
  printf "mean   %12.0f %10s %12.0f %10s %10.3f %14.1f %14.1f\n", l / NR, "", p / NR, "", p / l, lc / NR, pc / NR
  printf "peer-hop requests/s over local-hit requests/s: %.3f (target >= 0.5)\n", p / l}' "$work/rounds"
for i in 1 2 3; do
  kill -0 "$(eval echo \$pid$i)" 2>/dev/null || { echo "node-$i died" >&2; tail -n 20 "$work/node-$i.log" >&2; exit 1; }
done
