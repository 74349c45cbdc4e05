#!/usr/bin/env bash
# Bare peer-hop load test of the transports, without cache logic (scripts/wirehop): an owner
# process, and one front process per transport (wire, wire-mac, http, h2c). wrk -t1 -c32 against
# each front alternates GET /local/{key} (answered from the front's own map) and GET
# /peer/{key} (one hop to the owner), and prints requests/s, p50, the ratio peer/local and
# the CPU time per request (from /proc) of the front and, for hops, of the owner.
#
#   scripts/bench-wirehop.sh                        # 3 rounds x 5 s, wrk -t1 -c32
#   ROUNDS=5 DURATION=10s VIA="wire http" scripts/bench-wirehop.sh
#
# Every process listens on 127.0.0.1:0, every wrk run is bounded in time, and every process
# stops by itself (SIGTERM at exit, -max-run otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5s}"
CONNECTIONS="${CONNECTIONS:-32}"
KEYS="${KEYS:-300}"
VALUE_BYTES="${VALUE_BYTES:-1024}"
VIA="${VIA:-wire wire-mac http h2c}"
MAX_CONNS="${MAX_CONNS:-0}"

command -v wrk >/dev/null || { echo "bench-wirehop.sh needs wrk" >&2; exit 1; }
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$work/wirehop" ./scripts/wirehop

start() { # start NAME ARGS...: runs wirehop, waits for its address, sets addr_NAME and pid_NAME
  local name="$1"; shift
  "$work/wirehop" -keys "$KEYS" -value-bytes "$VALUE_BYTES" -max-run 30m "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=("$!")
  eval "pid_${name//-/_}=$!"
  for _ in $(seq 100); do
    if grep -q '^listening' "$work/$name.out"; then
      eval "addr_${name//-/_}=$(awk '/^listening/ {print $2}' "$work/$name.out")"
      return
    fi
    sleep 0.05
  done
  echo "$name did not start" >&2; cat "$work/$name.err" >&2; exit 1
}

start owner -role owner
for via in $VIA; do start "front-$via" -role front -owner "$addr_owner" -via "$via" -max-conns "$MAX_CONNS"; done

for set in local peer; do
  {
    echo 'local i = 0'
    echo "request = function() i = i % $KEYS + 1; return wrk.format(\"GET\", \"/$set/k\" .. i) end"
  } >"$work/$set.lua"
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"
run() { # run VIA SET: prints "rps p50 front_cpu_us owner_cpu_us non2xx"
  local pid addr before after obefore oafter out
  pid="$(eval echo "\$pid_front_${1//-/_}")"; addr="$(eval echo "\$addr_front_${1//-/_}")"
  before="$(cpu_ticks "$pid")"; obefore="$(cpu_ticks "$pid_owner")"
  out="$(timeout 120 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/$2.lua" "http://$addr")"
  after="$(cpu_ticks "$pid")"; oafter="$(cpu_ticks "$pid_owner")"
  echo "$out" | awk -v ticks="$((after - before))" -v oticks="$((oafter - obefore))" -v hz="$hz" '
    /Requests\/sec/ {rps = $2} /requests in/ {n = $1} $1 == "50%" {p50 = $2} /Non-2xx/ {bad = $NF}
    END {printf "%s %s %.1f %.1f %s\n", rps, p50, (n > 0 ? ticks / hz * 1e6 / n : 0),
      (n > 0 ? oticks / hz * 1e6 / n : 0), (bad == "" ? 0 : bad)}'
}

for via in $VIA; do
  timeout 30 wrk -t1 -c4 -d1s -s "$work/peer.lua" "http://$(eval echo "\$addr_front_${via//-/_}")" >/dev/null
done
echo "== wrk -t1 -c$CONNECTIONS -d$DURATION per set, $ROUNDS rounds, value of $VALUE_BYTES bytes, load $(cut -d' ' -f1-3 /proc/loadavg)"
# l_cpu_us, p_cpu_us: the front's CPU time per request, local and peer sets; o_cpu_us: the
# owner's per request of the peer set.
printf "%-6s %-9s %10s %9s %10s %9s %8s %8s %8s %8s\n" round via local_rps l_p50 peer_rps p_p50 ratio l_cpu_us p_cpu_us o_cpu_us
for round in $(seq "$ROUNDS"); do
  for via in $VIA; do
    read -r lr lp lc _ lbad <<<"$(run "$via" local)"
    read -r pr pp pc oc pbad <<<"$(run "$via" peer)"
    [ "$lbad" = 0 ] && [ "$pbad" = 0 ] || { echo "non-2xx answers: local $lbad, peer $pbad" >&2; exit 1; }
    printf "%-6s %-9s %10.0f %9s %10.0f %9s %8.3f %8s %8s %8s\n" "$round" "$via" "$lr" "$lp" "$pr" "$pp" \
      "$(awk -v p="$pr" -v l="$lr" 'BEGIN {print p / l}')" "$lc" "$pc" "$oc"
  done
done
