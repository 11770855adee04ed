#!/usr/bin/env bash
# numpy conjugate-gradient solver on a sparse-ish SPD system (the NPB-CG analogue), bounded by time.
source "$(dirname "$0")/lib.sh"
python3 -c 'import numpy' 2>/dev/null || need none python3-numpy
solve() { # solve RUN N
  timeout $((DURATION + 30)) /usr/bin/python3 "$(dirname "$0")/numpy_cg.py" $((DURATION + 20)) "$2" &
  local pid=$!; CLEANUP_PIDS+=("$pid"); sleep 2
  trace_pid "$pid" numpy-cg "CG, n=$2, banded SPD matrix, restart every 200 iterations" "$1"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}
for run in ${RUNS:-a b}; do
  case $run in a) solve a 20000 ;; b) solve b 400000 ;; esac
done
