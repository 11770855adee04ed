#!/usr/bin/env bash
# memcached under memcslap (libmemcached-tools), loopback only.
source "$(dirname "$0")/lib.sh"
need memcached memcached; need memcslap libmemcached-tools
load() { # load RUN CONCURRENCY
  local port; port=$(free_port)
  memcached -l 127.0.0.1 -p "$port" -m 256 -u nobody -t 2 &
  local srv=$!; CLEANUP_PIDS+=("$srv"); wait_port "$port"
  ( end=$((SECONDS + DURATION + 15))
    while [ $SECONDS -lt $end ]; do
      timeout 20 memcslap --servers="127.0.0.1:$port" --concurrency="$2" --execute-number=20000 \
        --flush >/dev/null 2>&1 || true
    done ) &
  local ld=$!; CLEANUP_PIDS+=("$ld")
  trace_pid "$srv" memcached "memcslap --concurrency=$2 --execute-number=20000 (loop)" "$1"
  kill "$srv" "$ld" 2>/dev/null || true; wait 2>/dev/null || true
}
for run in ${RUNS:-a b}; do
  case $run in a) load a 4 ;; b) load b 12 ;; esac
done
