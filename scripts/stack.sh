#!/usr/bin/env bash
# The deployable stack on this machine, without Docker, for a person to try (`make stack`):
# redis-server (the online store, append-only file), PostgreSQL (the registry, a database
# `featurehub_stack` on the server ensure-postgres.sh finds), the feature server and one
# scheduler, over the example repo. STACK_SPARK=1 adds a Spark standalone master and worker
# (from the pyspark package) and runs the scheduler's engine on them.
#
#   scripts/stack.sh start   # in the foreground: prints the URLs; Ctrl-C stops everything
#   scripts/stack.sh stop    # from another terminal (`make stack-stop`)
#
# Everything it starts has a pid file and a log under .stack/ (gitignored), so `stop` ends
# exactly those processes. Configuration is FEATUREHUB_* variables only (docs/orchestration.md).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="$ROOT/.stack"
REPO="${FEATUREHUB_REPO:-$ROOT/feature_repo}"
PYTHON="${STACK_PYTHON:-$ROOT/.venv/bin/python}"
SERVER_PORT="${FEATUREHUB_SERVER_PORT:-6566}"
REDIS_PORT="${STACK_REDIS_PORT:-6380}"
SPARK_PORT="${STACK_SPARK_PORT:-7077}"
SPARK_UI_PORT="${STACK_SPARK_UI_PORT:-8080}"
DATABASE="${STACK_DATABASE:-featurehub_stack}"

say() { echo "stack: $*"; }

# start NAME COMMAND...: run it in the background, its output in .stack/NAME.log.
start() {
  local name="$1"
  shift
  "$@" >"$STATE/$name.log" 2>&1 &
  echo $! >"$STATE/$name.pid"
}

# stop_one NAME: SIGTERM (a running materialization finishes), then wait up to 5 minutes.
stop_one() {
  local file="$STATE/$1.pid" pid
  [ -f "$file" ] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$file"
}

stop_all() {
  for name in server scheduler spark-worker spark-master redis; do stop_one "$name"; done
}

wait_for() {  # wait_for WHAT LOG COMMAND...: until COMMAND succeeds, or fail showing LOG
  local what="$1" log="$2"
  shift 2
  for _ in $(seq 1 120); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "stack: $what did not come up; the end of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
}

running() {
  for file in "$STATE"/*.pid; do
    [ -f "$file" ] && kill -0 "$(cat "$file")" 2>/dev/null && return 0
  done
  return 1
}

cmd_start() {
  [ -x "$PYTHON" ] || { echo "stack: no $PYTHON; run \`make install\` first" >&2; exit 1; }
  mkdir -p "$STATE"
  if running; then
    echo "stack: already running (pid files in $STATE); \`make stack-stop\` stops it" >&2
    exit 1
  fi
  trap 'stop_all; exit 0' INT TERM

  # PostgreSQL: the registry, in a database of its own on the server found.
  source "$ROOT/scripts/ensure-postgres.sh"
  "$PYTHON" - "$PG_URL" "$DATABASE" <<'EOF'
import sys

import psycopg

admin, name = sys.argv[1:]
with psycopg.connect(admin, autocommit=True) as connection:
    if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
        connection.execute(f'CREATE DATABASE "{name}"')
EOF
  export FEATUREHUB_REGISTRY_URL="${PG_URL%/*}/$DATABASE"

  # Redis: the online store; it persists (AOF) under .stack/redis.
  local redis
  redis="$(command -v redis-server || "$PYTHON" -c 'from tests.redis_server import find_redis_server as f; print(f())')"
  mkdir -p "$STATE/redis"
  start redis "$redis" --port "$REDIS_PORT" --bind 127.0.0.1 --appendonly yes \
    --appendfsync everysec --dir "$STATE/redis"
  wait_for "redis-server" "$STATE/redis.log" \
    "$PYTHON" -c "import redis; redis.Redis(port=$REDIS_PORT).ping()"
  export FEATUREHUB_ONLINE_STORE_URL="redis://127.0.0.1:$REDIS_PORT/0"
  export FEATUREHUB_OFFLINE_ROOT="$STATE/offline"

  if [ "${STACK_SPARK:-0}" = 1 ]; then
    local spark_home
    spark_home="$("$PYTHON" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
    export SPARK_HOME="$spark_home" SPARK_LOCAL_IP=127.0.0.1
    start spark-master "$spark_home/bin/spark-class" org.apache.spark.deploy.master.Master \
      --host 127.0.0.1 --port "$SPARK_PORT" --webui-port "$SPARK_UI_PORT"
    wait_for "the Spark master" "$STATE/spark-master.log" \
      "$PYTHON" -c "import socket; socket.create_connection(('127.0.0.1', $SPARK_PORT), 1)"
    start spark-worker "$spark_home/bin/spark-class" org.apache.spark.deploy.worker.Worker \
      "spark://127.0.0.1:$SPARK_PORT" --host 127.0.0.1 --cores 1 --memory 1g \
      --work-dir "$STATE/spark-work"
    wait_for "the Spark worker" "$STATE/spark-worker.log" \
      grep -q "Successfully registered with master" "$STATE/spark-worker.log"
    export FEATUREHUB_ENGINE=spark FEATUREHUB_SPARK_MASTER="spark://127.0.0.1:$SPARK_PORT"
  fi

  [ -f "$REPO/data/driver_hourly_stats.parquet" ] || "$PYTHON" "$REPO/generate_data.py"
  "$PYTHON" -m featurehub -r "$REPO" apply
  start scheduler "$PYTHON" -m featurehub -r "$REPO" schedule \
    --health-file "$STATE/scheduler.alive"
  start server "$PYTHON" -m featurehub -r "$REPO" serve --port "$SERVER_PORT"
  wait_for "the feature server" "$STATE/server.log" \
    "$PYTHON" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$SERVER_PORT/readyz')"

  say "up. Logs and pid files in $STATE; Ctrl-C (or \`make stack-stop\`) stops it."
  say "feature server   http://127.0.0.1:$SERVER_PORT  (/docs, /readyz, /metrics)"
  say "registry         $FEATUREHUB_REGISTRY_URL"
  say "online store     $FEATUREHUB_ONLINE_STORE_URL"
  [ "${STACK_SPARK:-0}" = 1 ] && say "Spark master UI  http://127.0.0.1:$SPARK_UI_PORT"
  say "scheduler        health file $STATE/scheduler.alive; featurehub -r $REPO status"
  say "try: curl -s http://127.0.0.1:$SERVER_PORT/v1/features -H 'content-type: application/json' \\"
  say "       -d '{\"feature_service\": \"trip_completion_v1\", \"entities\": {\"driver_id\": [1009], \"customer_id\": [14], \"pickup_zone\": [\"zone_11\"], \"dropoff_zone\": [\"zone_05\"]}}'"
  while running; do sleep 1; done  # until Ctrl-C, `stack-stop`, or every process died
  stop_all
}

case "${1:-}" in
  start) cmd_start ;;
  stop) stop_all ;;
  *) echo "usage: scripts/stack.sh start|stop" >&2; exit 2 ;;
esac
