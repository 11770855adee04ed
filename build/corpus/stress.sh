#!/usr/bin/env bash
# stress-ng vm stressors at two sizes/methods, bounded by --timeout.
source "$(dirname "$0")/lib.sh"
need stress-ng stress-ng
vm() { # vm RUN BYTES METHOD
  stress-ng --vm 1 --vm-bytes "$2" --vm-method "$3" --vm-keep --timeout $((DURATION + 15))s \
    >/dev/null 2>&1 &
  local pid=$!; CLEANUP_PIDS+=("$pid"); sleep 1
  trace_pid "$pid" stress-vm "stress-ng --vm 1 --vm-bytes $2 --vm-method $3" "$1"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}
vm a 48M rowhammer
vm b 64M walk-1d
