#!/usr/bin/env bash
# Load test of one node's GET hit path: the full httpapi stack against a bare chi route that
# serves the same bytes from a map (scripts/benchserver, one process each), measured
# alternately in one run with wrk. For each run it prints the requests/s and the requests
# per CPU-second the server process used (read from /proc), then the ratios full/bare. The
# target is a requests/s ratio >= 0.97. The per-CPU-second ratio is the steadier figure on
# a machine that other work shares: it does not move when a neighbour takes a core.
#
#   scripts/bench-http.sh                         # 3 rounds x 10 s, 2 threads, 64 connections
#   ROUNDS=6 DURATION=5s scripts/bench-http.sh
#   NICE=-10 scripts/bench-http.sh                # as root: keep other work on the machine from
#                                                 # taking the cores in the middle of a run
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
go build -o "$work/benchserver" ./scripts/benchserver

secs() { echo "${1%s}"; }
# Each server stops by itself after twice the planned load time plus a minute.
max_run=$(( ($(secs "$DURATION") * ROUNDS + $(secs "$WARMUP")) * 2 * 2 + 60 ))

declare -A url pid
for name in full bare; do
  nice -n "$NICE" "$work/benchserver" -serve "$name" -value-bytes "$VALUE_BYTES" -max-run "${max_run}s" >"$work/$name.addr" &
  pid[$name]=$!
  pids+=("$!")
done
for name in full bare; do
  for _ in $(seq 200); do
    [ -s "$work/$name.addr" ] && break
    kill -0 "${pid[$name]}" 2>/dev/null || { echo "benchserver ($name) exited" >&2; exit 1; }
    sleep 0.05
  done
  url[$name]="$(awk -v n="$name" '$1 == n {print $2}' "$work/$name.addr")"
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
