#!/usr/bin/env bash
# Load test of one node's GET hit path: the full httpapi stack against a bare chi route that
# serves the same bytes from a map (scripts/benchserver), measured alternately in one run
# with wrk. Prints each round's requests/s and the ratio full/bare; the target is >= 0.97.
#
#   scripts/bench-http.sh                 # 3 rounds x 10 s, 2 threads, 64 connections
#   ROUNDS=5 DURATION=20s scripts/bench-http.sh
#
# Traffic goes to 127.0.0.1 only; every wrk run and the server itself are bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
VALUE_BYTES="${VALUE_BYTES:-1024}"

if ! command -v wrk >/dev/null 2>&1; then
  echo "== installing wrk"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq wrk >/dev/null
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building scripts/benchserver"
go build -o "$work/benchserver" ./scripts/benchserver

# The server stops by itself after twice the planned load time plus a minute.
secs="${DURATION%s}"
max_run=$(( (secs * ROUNDS * 2) * 2 + 60 ))
"$work/benchserver" -value-bytes "$VALUE_BYTES" -max-run "${max_run}s" >"$work/addrs" &
server_pid=$!

for _ in $(seq 100); do
  [ "$(wc -l <"$work/addrs")" -ge 2 ] && break
  kill -0 "$server_pid" 2>/dev/null || { echo "benchserver exited" >&2; exit 1; }
  read -r -t 0.1 _ </dev/zero 2>/dev/null || true
done
full_url="$(awk '$1 == "full" {print $2}' "$work/addrs")"
bare_url="$(awk '$1 == "bare" {print $2}' "$work/addrs")"
[ -n "$full_url" ] && [ -n "$bare_url" ] || { echo "benchserver printed no addresses" >&2; exit 1; }
for url in "$full_url" "$bare_url"; do
  curl -fsS -o /dev/null "$url"
done

# rps URL: one wrk run, bounded by timeout, printing its requests/s.
rps() {
  timeout $(( secs + 30 )) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$1" >"$work/wrk.out"
  if grep -q "Non-2xx" "$work/wrk.out"; then cat "$work/wrk.out" >&2; echo "non-2xx answers" >&2; exit 1; fi
  awk '/^Requests\/sec:/ {print $2}' "$work/wrk.out"
}

echo "== warm-up (5 s each)"
DURATION_SAVED="$DURATION"; DURATION=5s; secs=5
rps "$full_url" >/dev/null; rps "$bare_url" >/dev/null
DURATION="$DURATION_SAVED"; secs="${DURATION%s}"

echo "== wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds, value of $VALUE_BYTES bytes, alternating"
printf "%-6s %14s %14s %8s\n" round full_rps bare_rps ratio
: >"$work/rounds"
for round in $(seq "$ROUNDS"); do
  # Alternate which one goes first, so drift in the machine's load favours neither.
  if [ $((round % 2)) = 1 ]; then f="$(rps "$full_url")"; b="$(rps "$bare_url")"
  else b="$(rps "$bare_url")"; f="$(rps "$full_url")"; fi
  echo "$f $b" >>"$work/rounds"
  printf "%-6s %14s %14s %8s\n" "$round" "$f" "$b" "$(awk -v f="$f" -v b="$b" 'BEGIN {printf "%.3f", f / b}')"
done
# The ratio of the sums weighs every second alike; the median of the per-round ratios
# resists a round that other work on the machine disturbed.
sort -n -k3 <(awk '{print $1, $2, $1 / $2}' "$work/rounds") | awk '
  { f += $1; b += $2; r[NR] = $3 }
  END {
    med = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
    printf "mean   %14.0f %14.0f %8.3f\n", f / NR, b / NR, f / b
    printf "ratio full/bare: %.3f of the sums, %.3f median of %d rounds (target >= 0.97)\n", f / b, med, NR
  }'
