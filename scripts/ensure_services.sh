#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis the tests need answer; start throwaway ones if they don't.
#
# Tests find the services by env URLs (defaults below). On the project's machines both already run.
# On a fresh Debian machine where nothing answers, this installs the Debian packages (as root) and
# starts a throwaway PostgreSQL cluster (trust auth, db `test`) and a non-persistent redis-server.
# Nothing is skipped silently: if a service cannot be brought up, this exits non-zero.
set -euo pipefail

PG_HOST=${FLOWSYNC_TEST_PG_HOST:-127.0.0.1}
PG_PORT=${FLOWSYNC_TEST_PG_PORT:-5432}
REDIS_HOST=${FLOWSYNC_TEST_REDIS_HOST:-127.0.0.1}
REDIS_PORT=${FLOWSYNC_TEST_REDIS_PORT:-6379}
STATE=${FLOWSYNC_SERVICES_DIR:-/tmp/flowsync-services}

have() { command -v "$1" >/dev/null 2>&1; }

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then echo "ensure_services: need root to apt-get install $*" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  if tcp_open "$PG_HOST" "$PG_PORT"; then
    echo "postgres: answering on $PG_HOST:$PG_PORT"
    return
  fi
  echo "postgres: nothing on $PG_HOST:$PG_PORT, starting a throwaway cluster in $STATE/pg"
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$bindir" ]; then apt_install postgresql; bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1); fi
  mkdir -p "$STATE/pg" && chown -R postgres:postgres "$STATE/pg" 2>/dev/null || true
  local run=()
  [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
  if [ ! -f "$STATE/pg/data/PG_VERSION" ]; then
    "${run[@]}" "$bindir/initdb" -D "$STATE/pg/data" -A trust -U postgres >/dev/null
  fi
  "${run[@]}" "$bindir/pg_ctl" -D "$STATE/pg/data" -l "$STATE/pg/log" -w \
    -o "-p $PG_PORT -k $STATE/pg -c listen_addresses=$PG_HOST" start >/dev/null
  "${run[@]}" "$bindir/createdb" -h "$PG_HOST" -p "$PG_PORT" -U postgres test 2>/dev/null || true
  tcp_open "$PG_HOST" "$PG_PORT" || { echo "postgres: failed to start (see $STATE/pg/log)" >&2; exit 1; }
}

ensure_redis() {
  if tcp_open "$REDIS_HOST" "$REDIS_PORT"; then
    echo "redis: answering on $REDIS_HOST:$REDIS_PORT"
    return
  fi
  echo "redis: nothing on $REDIS_HOST:$REDIS_PORT, starting a throwaway redis-server"
  have redis-server || apt_install redis-server
  mkdir -p "$STATE/redis"
  redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$STATE/redis" --logfile "$STATE/redis/log"
  for _ in $(seq 50); do tcp_open "$REDIS_HOST" "$REDIS_PORT" && return; sleep 0.1; done
  echo "redis: failed to start (see $STATE/redis/log)" >&2
  exit 1
}

ensure_postgres
ensure_redis
