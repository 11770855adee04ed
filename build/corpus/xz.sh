#!/usr/bin/env bash
# xz compressing a stream: a workload that rewrites most of its memory every round, where pre-copy
# cannot converge (the policy issue's "xz-like" case). Bounded by timeout.
source "$(dirname "$0")/lib.sh"
need xz xz-utils
xzrun() { # xzrun RUN LEVEL
  timeout $((DURATION + 15)) bash -c "head -c 4G /dev/urandom | base64 | xz -$2 -T1 >/dev/null" &
  CLEANUP_PIDS+=("$!"); sleep 2
  local pid; pid="$(pgrep -n -x xz)"
  trace_pid "$pid" xz "head -c 4G /dev/urandom | base64 | xz -$2 -T1" "$1"
  kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true
}
xzrun a 6
