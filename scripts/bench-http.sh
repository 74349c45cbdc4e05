#!/usr/bin/env bash
# Load test of one node's GET hit path: the full stack (an httpapi.Node serving alone: its
# middleware chain, the fast path, the group) against a bare chi route that serves the same
# bytes from a map (scripts/benchserver, one process each), measured
# alternately in one run with wrk. For each run it prints the requests/s and the requests
# per CPU-second the server process used (read from /proc), then the ratios full/bare. The
# target is a requests/s ratio >= 0.97.
#
# On a machine that other work shares, both figures move by tens of percent from one run to
# the next. MODE=instructions gives the steady one: each server runs under valgrind's
# callgrind, which counts the user-space instructions the server spends per request. That is
# where the two servers differ (the kernel's and wrk's work per request is the same for
# both), so on an idle machine the requests/s ratio lies between the ratio bare/full of those
# counts and 1.
#
#   scripts/bench-http.sh                         # 3 rounds x 10 s, 2 threads, 64 connections
#   ROUNDS=6 DURATION=5s scripts/bench-http.sh
#   NICE=-10 scripts/bench-http.sh                # as root: keep other work on the machine from
#                                                 # taking the cores in the middle of a run
#   MODE=instructions ROUNDS=2 DURATION=6s scripts/bench-http.sh
#
# Traffic goes to 127.0.0.1 only; every wrk run and both servers are bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
VALUE_BYTES="${VALUE_BYTES:-1024}"
WARMUP="${WARMUP:-3s}"
NICE="${NICE:-0}"
MODE="${MODE:-rps}"

if ! command -v wrk >/dev/null 2>&1; then
  echo "== installing wrk"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq wrk >/dev/null
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building scripts/benchserver"
CGO_ENABLED=0 go build -o "$work/benchserver" ./scripts/benchserver

secs() { echo "${1%s}"; }

# wait_addr NAME PID: waits for the server to print its address and checks it answers.
wait_addr() {
  for _ in $(seq 300); do
    [ -s "$work/$1.addr" ] && break
    kill -0 "$2" 2>/dev/null || { echo "benchserver ($1) exited" >&2; exit 1; }
    sleep 0.1
  done
  awk -v n="$1" '$1 == n {print $2}' "$work/$1.addr"
}

if [ "$MODE" = instructions ]; then
  if ! command -v valgrind >/dev/null 2>&1; then
    echo "== installing valgrind"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq valgrind >/dev/null
  fi
  # count NAME: user-space instructions per request of one server, over one wrk run with
  # callgrind's instrumentation switched on for that run only.
  count() {
    local name="$1" vpid u n total
    rm -f "$work/$name.addr" "$work/cg.$name".*
    GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --instr-atstart=no \
      --callgrind-out-file="$work/cg.$name.out" \
      "$work/benchserver" -serve "$name" -value-bytes "$VALUE_BYTES" -max-run 600s \
      >"$work/$name.addr" 2>"$work/$name.valgrind" &
    vpid=$!
    pids+=("$vpid")
    u="$(wait_addr "$name" "$vpid")"
    [ -n "$u" ] || { echo "benchserver ($name) printed no address" >&2; exit 1; }
    timeout 60 wrk -t1 -c4 -d2s "$u" >/dev/null
    callgrind_control -z "$vpid" >/dev/null 2>&1
    callgrind_control -i on "$vpid" >/dev/null 2>&1
    n="$(timeout $(( $(secs "$DURATION") + 60 )) wrk -t1 -c4 -d"$DURATION" "$u" | awk '/requests in/ {print $1}')"
    callgrind_control -i off "$vpid" >/dev/null 2>&1
    callgrind_control -d "$vpid" >/dev/null 2>&1
    kill "$vpid"; wait "$vpid" 2>/dev/null || true
    total="$(cat "$work/cg.$name".out.* | awk '/^totals:/ {s += $2} END {print s}')"
    awk -v t="$total" -v n="$n" 'BEGIN {printf "%.0f\n", t / n}'
  }
  echo "== callgrind, wrk -t1 -c4 -d$DURATION per server, $ROUNDS rounds, value of $VALUE_BYTES bytes"
  printf "%-6s %18s %18s %12s\n" round full_instr/req bare_instr/req bare/full
  : >"$work/rounds"
  for round in $(seq "$ROUNDS"); do
    f="$(count full)"; b="$(count bare)"
    echo "$f $b" >>"$work/rounds"
    echo "$round $f $b" | awk '{printf "%-6s %18s %18s %12.3f\n", $1, $2, $3, $3 / $2}'
  done
  awk '{f += $1; b += $2} END {printf "mean   %18.0f %18.0f %12.3f\n", f / NR, b / NR, b / f
    printf "instructions per request, bare/full: %.3f (target for requests/s full/bare: >= 0.97)\n", b / f}' "$work/rounds"
  exit 0
fi
# Each server stops by itself after twice the planned load time plus a minute.
max_run=$(( ($(secs "$DURATION") * ROUNDS + $(secs "$WARMUP")) * 2 * 2 + 60 ))

declare -A url pid
for name in full bare; do
  nice -n "$NICE" "$work/benchserver" -serve "$name" -value-bytes "$VALUE_BYTES" -max-run "${max_run}s" >"$work/$name.addr" &
  pid[$name]=$!
  pids+=("$!")
done
for name in full bare; do
  url[$name]="$(wait_addr "$name" "${pid[$name]}")"
  [ -n "${url[$name]}" ] || { echo "benchserver ($name) printed no address" >&2; exit 1; }
  curl -fsS -o /dev/null "${url[$name]}"
done

# cpu_ticks PID: user + system time of the process so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"

# run NAME DURATION: one bounded wrk run; prints "requests/s requests-per-CPU-second".
run() {
  local name="$1" d="$2" before after
  before="$(cpu_ticks "${pid[$name]}")"
  timeout $(( $(secs "$d") + 30 )) nice -n "$NICE" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$d" "${url[$name]}" >"$work/wrk.out"
  after="$(cpu_ticks "${pid[$name]}")"
  if grep -q "Non-2xx" "$work/wrk.out"; then cat "$work/wrk.out" >&2; echo "non-2xx answers" >&2; exit 1; fi
  awk -v b="$before" -v a="$after" -v hz="$hz" '
    /^Requests\/sec:/ {rps = $2}
    /requests in/ {n = $1}
    END {printf "%.0f %.0f\n", rps, n / ((a - b) / hz)}' "$work/wrk.out"
}

echo "== warm-up ($WARMUP each)"
run full "$WARMUP" >/dev/null
run bare "$WARMUP" >/dev/null

echo "== wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds, value of $VALUE_BYTES bytes, alternating"
printf "%-6s %12s %12s %7s %14s %14s %7s\n" round full_rps bare_rps ratio full_req/cpu-s bare_req/cpu-s ratio
: >"$work/rounds"
for round in $(seq "$ROUNDS"); do
  # Alternate which one goes first, so drift in the machine's load favours neither.
  if [ $((round % 2)) = 1 ]; then f="$(run full "$DURATION")"; b="$(run bare "$DURATION")"
  else b="$(run bare "$DURATION")"; f="$(run full "$DURATION")"; fi
  echo "$f $b" >>"$work/rounds"
  echo "$round $f $b" | awk '{printf "%-6s %12s %12s %7.3f %14s %14s %7.3f\n", $1, $2, $4, $2 / $4, $3, $5, $3 / $5}'
done
# The ratio of the sums weighs every second alike; the median of the per-round ratios
# resists a round that other work on the machine disturbed.
awk '
  function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j] < a[j - 1]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  { fr += $1; fc += $2; br += $3; bc += $4; r[NR] = $1 / $3; c[NR] = $2 / $4
    if ($1 > mfr) mfr = $1; if ($2 > mfc) mfc = $2; if ($3 > mbr) mbr = $3; if ($4 > mbc) mbc = $4 }
  END {
    printf "%-6s %12.0f %12.0f %7.3f %14.0f %14.0f %7.3f\n", "mean", fr / NR, br / NR, fr / br, fc / NR, bc / NR, fc / bc
    printf "%-6s %12.0f %12.0f %7.3f %14.0f %14.0f %7.3f\n", "best", mfr, mbr, mfr / mbr, mfc, mbc, mfc / mbc
    printf "requests/s full/bare: %.3f of the sums, %.3f median of %d rounds (target >= 0.97)\n", fr / br, median(r, NR), NR
    printf "requests per CPU-second full/bare: %.3f of the sums, %.3f median\n", fc / bc, median(c, NR)
    printf "best round of each (least disturbed by other work): %.3f requests/s, %.3f per CPU-second\n", mfr / mbr, mfc / mbc
  }' "$work/rounds"
