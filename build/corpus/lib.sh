#!/usr/bin/env bash
# Shared helpers for the corpus scripts: trace a pid with `u2cm trace` into models/corpus/.
# Every script is bounded in time (timeout) and uses loopback only.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${CORPUS_DIR:-$REPO/models/corpus}"
DURATION="${CORPUS_DURATION:-60}"
INTERVAL="${CORPUS_INTERVAL:-100}"
WORK="$(mktemp -d /tmp/u2cm-corpus.XXXXXX)"
mkdir -p "$OUT"
trap 'cleanup' EXIT
CLEANUP_PIDS=()
cleanup() {
  for p in "${CLEANUP_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
need() { # need CMD PKG: install PKG with apt-get when CMD is missing
  command -v "$1" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null
}
free_port() { echo $((20000 + RANDOM % 20000)); }
wait_port() { # wait_port PORT: up to 10 s
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}
# trace_pid PID NAME LOAD RUN: trace PID for DURATION seconds into $OUT/NAME-RUN.u2ct, then gzip it.
trace_pid() {
  local pid="$1" name="$2" load="$3" run="$4"
  local file="$OUT/$name-$run.u2ct"
  (cd "$REPO" && deno run -A main.ts trace --pid "$pid" --interval "$INTERVAL" \
    --duration "$DURATION" --format jsonl --workload "$name" --load "$load" -o "$file" >/dev/null)
  gzip -9 -f "$file"
  echo "wrote $file.gz"
}
