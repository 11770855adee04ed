#!/usr/bin/env bash
# PostgreSQL under pgbench (TPC-B-like), private data dir, unix socket only.
source "$(dirname "$0")/lib.sh"
need pgbench postgresql-client; [ -d /usr/lib/postgresql ] || need initdb postgresql
BIN="$(ls -d /usr/lib/postgresql/*/bin | tail -1)"
mkdir -p "$WORK/pg" "$WORK/sock"; chown -R postgres "$WORK"; chmod 755 "$WORK"
su postgres -c "$BIN/initdb -D $WORK/pg -A trust" >/dev/null
su postgres -c "$BIN/postgres -D $WORK/pg -k $WORK/sock -c listen_addresses='' -p 5499 \
  -c shared_buffers=64MB" >/dev/null 2>&1 &
for _ in $(seq 1 100); do [ -S "$WORK/sock/.s.PGSQL.5499" ] && break; sleep 0.1; done
srv=$(head -1 "$WORK/pg/postmaster.pid"); CLEANUP_PIDS+=("$srv")
su postgres -c "pgbench -h $WORK/sock -p 5499 -i -s 10 postgres" >/dev/null 2>&1
su postgres -c "timeout $((DURATION + 15)) pgbench -h $WORK/sock -p 5499 -c 4 -j 2 \
  -T $((DURATION + 10)) postgres" >/dev/null 2>&1 &
trace_pid "$srv" postgres "pgbench -s 10 -c 4 -j 2" a
su postgres -c "$BIN/pg_ctl -D $WORK/pg stop -m fast" >/dev/null 2>&1 || true
