#!/usr/bin/env bash
# sqlite3 CLI running a bounded batch of inserts/updates/selects on a file database.
source "$(dirname "$0")/lib.sh"
need sqlite3 sqlite3
{
  echo "PRAGMA cache_size=-65536; CREATE TABLE t(id INTEGER PRIMARY KEY, k INT, v BLOB);"
  echo "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<200000)"
  echo "INSERT INTO t SELECT i, abs(random())%100000, randomblob(200) FROM s;"
  echo "CREATE INDEX tk ON t(k);"
  for i in $(seq 1 9000); do
    echo "UPDATE t SET v=randomblob(200), k=abs(random())%100000 WHERE id IN"
    echo "  (SELECT abs(random())%200000 FROM t LIMIT 300);"
    echo "SELECT count(*), sum(length(v)) FROM t WHERE k BETWEEN $((i * 20)) AND $((i * 20 + 500));"
  done
} >"$WORK/load.sql"
(timeout $((DURATION + 30)) sqlite3 "$WORK/db.sqlite" <"$WORK/load.sql" >/dev/null) &
sleep 1; pid=$(pgrep -n -x sqlite3); CLEANUP_PIDS+=("$pid")
trace_pid "$pid" sqlite "9000 x (UPDATE 300 random rows + range SELECT), 200k rows, 64 MiB cache" a
