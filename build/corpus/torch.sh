#!/usr/bin/env bash
# PyTorch CPU training of a small ResNet-style net on synthetic images (bounded by time).
source "$(dirname "$0")/lib.sh"
[ -n "$(dpkg -l python3-torch 2>/dev/null | grep ^ii)" ] || need none python3-torch
train() { # train RUN BATCH WIDTH
  timeout $((DURATION + 30)) /usr/bin/python3 "$(dirname "$0")/torch_train.py" $((DURATION + 20)) \
    "$2" "$3" &
  local pid=$!; CLEANUP_PIDS+=("$pid"); sleep 3
  trace_pid "$pid" torch "small ResNet, batch $2, width $3, 32x32 synthetic images, 1 thread" "$1"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}
for run in ${RUNS:-a b}; do
  case $run in a) train a 32 32 ;; b) train b 64 48 ;; esac
done
