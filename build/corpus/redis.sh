#!/usr/bin/env bash
# redis-server under redis-benchmark (YCSB-like mixes), loopback only.
# redis-benchmark runs its tests one after the other, so a mix is made of concurrent clients:
#   a: SET only (8 clients, write-heavy);  b: GET with 8 clients + SET with 1 client (read-heavy).
source "$(dirname "$0")/lib.sh"
need redis-server redis-server; need redis-benchmark redis-tools
bench() { # bench PORT TEST CLIENTS: bounded by request count and time
  timeout $((DURATION + 15)) redis-benchmark -p "$1" -t "$2" -n 50000000 -r 300000 -d 256 \
    -c "$3" -q >/dev/null 2>&1 &
  CLEANUP_PIDS+=("$!")
}
mix() { # mix RUN
  local port; port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
  local srv=$!; CLEANUP_PIDS+=("$srv"); wait_port "$port"
  local load
  if [ "$1" = a ]; then
    bench "$port" set 8; load="redis-benchmark SET 100% -r 300000 -d 256 -c 8 (write-heavy)"
  else
    timeout 60 redis-benchmark -p "$port" -t set -n 300000 -r 300000 -d 256 -q >/dev/null 2>&1
    bench "$port" get 8; bench "$port" set 1
    load="redis-benchmark GET -c 8 + SET -c 1, -r 300000 -d 256 (read-heavy)"
  fi
  trace_pid "$srv" redis "$load" "$1"
  kill "${CLEANUP_PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; CLEANUP_PIDS=()
}
for run in ${RUNS:-a b}; do mix "$run"; done
