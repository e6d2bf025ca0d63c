#!/usr/bin/env bash
# A private PostgreSQL 15 cluster for development and tests: data in var/pg, socket in var/run,
# log in var/log/postgres.log, listening on 127.0.0.1:$PARLEY_PG_PORT (default 55432) only.
# Durability settings stay at their production values (fsync, synchronous_commit on): Parley only
# acknowledges what is committed, and tests should see the real cost of that.
#
#   pg.sh start          start (idempotent), create the `parley` database if missing
#   pg.sh stop           fast shutdown (idempotent)
#   pg.sh status         exit 0 when running, 3 when stopped
#   pg.sh url [DB]       libpq URI of database DB (default parley) as `postgres`, the owner:
#                        migrations, scratch databases, tooling
#   pg.sh app-url [DB]   the same as `parley_app`, the application role Parley serves as (not a
#                        superuser, not BYPASSRLS, not the owner: Row Level Security binds it).
#                        Local connections trust every role, so it needs no password here. It
#                        goes through the Unix socket in var/run when there is one: ~8 % more
#                        webhooks/s than loopback TCP (docs/operations.md, PostgreSQL settings).
#   pg.sh local-url [DB] `url` through the Unix socket when there is one (benchmarks)
set -euo pipefail

LOG_TAG=pg
# shellcheck source=deploy/local/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PG_DATA="$VAR_DIR/pg"
PG_LOG="$LOG_DIR/postgres.log"
check_port_number PARLEY_PG_PORT "$PG_PORT"

# initdb and pg_ctl refuse to run as root: as root, run them as the postgres user, from / so that
# an unreadable working directory does not bother them.
as_pg() {
  if is_root; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

need_binaries() {
  [ -x "$PG_BIN/pg_ctl" ] || die "PostgreSQL 15 not found in $PG_BIN (run: make deps)"
  if is_root && ! id postgres >/dev/null 2>&1; then
    die "user 'postgres' does not exist (run: make deps)"
  fi
}

# The postgres user must reach var/: add o+x to the ancestors it cannot traverse (e.g. /root),
# and only to those.
make_traversable() {
  is_root || return 0
  local dir="$VAR_DIR" chain=()
  while [ "$dir" != / ]; do
    chain=("$dir" "${chain[@]}")
    dir=$(dirname "$dir")
  done
  for dir in "${chain[@]}"; do
    if ! runuser -u postgres -- test -x "$dir"; then
      say "note: chmod o+x $dir so the postgres user can reach var/pg"
      chmod o+x "$dir"
    fi
  done
}

own_by_pg() {
  if is_root; then
    chown -R postgres:postgres "$@"
  fi
}

# Running = pg_ctl sees a live postmaster for var/pg.
running() {
  [ -f "$PG_DATA/postmaster.pid" ] || return 1
  [ -x "$PG_BIN/pg_ctl" ] || return 1
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

# Line 4 of postmaster.pid is the port the running server listens on.
running_port() { sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null || true; }
running_pid() { sed -n 1p "$PG_DATA/postmaster.pid" 2>/dev/null || true; }

init_cluster() {
  [ -f "$PG_DATA/PG_VERSION" ] && return 0
  if [ -e "$PG_DATA" ] && [ -n "$(ls -A "$PG_DATA" 2>/dev/null)" ]; then
    die "$PG_DATA exists but holds no cluster; remove it (rm -rf var/pg) and retry"
  fi
  rmdir "$PG_DATA" 2>/dev/null || true
  # initdb into a scratch directory and rename it at the end, so an interrupted initdb never
  # leaves a half-made var/pg behind.
  local tmp="$VAR_DIR/pg.init"
  rm -rf "$tmp"
  mkdir -m 700 "$tmp"
  own_by_pg "$tmp"
  local locale=C
  if locale -a 2>/dev/null | grep -qix 'c\.utf-\?8'; then
    locale=C.UTF-8
  fi
  say "initdb $PG_DATA (UTF8, locale $locale)"
  if ! as_pg "$PG_BIN/initdb" -D "$tmp" -U postgres -A trust -E UTF8 --locale="$locale" \
    >"$LOG_DIR/initdb.log" 2>&1; then
    log_tail "$LOG_DIR/initdb.log" 30
    die "initdb failed (full output in var/log/initdb.log)"
  fi
  printf "\n# Parley: settings of the private development cluster (rewritten by pg.sh start)\n\
include_if_exists = 'parley.conf'\n" >>"$tmp/postgresql.conf"
  mv "$tmp" "$PG_DATA"
}

# The socket directory, or nothing: Unix socket paths are limited to 107 bytes, so a deeply
# nested checkout goes TCP-only.
socket_dir() {
  if [ "${#RUN_DIR}" -le 90 ]; then
    printf '%s' "$RUN_DIR"
  fi
}

# libpq URI of database $2 as role $1: through the socket when there is one and its path needs no
# escaping in a URI query, else loopback TCP.
local_uri() {
  local dir
  dir=$(socket_dir)
  if [ -n "$dir" ] && [[ "$dir" =~ ^[A-Za-z0-9/._-]+$ ]]; then
    printf 'postgresql://%s@/%s?host=%s&port=%s\n' "$1" "$2" "$dir" "$PG_PORT"
  else
    printf 'postgresql://%s@127.0.0.1:%s/%s\n' "$1" "$PG_PORT" "$2"
  fi
}

# Settings are rewritten on each start, so PARLEY_PG_PORT or a moved checkout take effect.
write_settings() {
  local socket_dir
  socket_dir=$(socket_dir)
  cat >"$PG_DATA/parley.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '${socket_dir//\'/\'\'}'
max_connections = 200
shared_buffers = 256MB
fsync = on
synchronous_commit = on
full_page_writes = on
# Checkpoints far apart: the first change of every page after a checkpoint goes to the WAL as a
# whole page, and with the defaults (1GB) a webhook load forced one every ~20 s
# (docs/operations.md, "PostgreSQL settings").
max_wal_size = 4GB
checkpoint_timeout = 15min
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  chmod 600 "$PG_DATA/parley.conf"
}

psql_q() { # db sql
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -tAc "$2"
}

ensure_database() { # name
  if [ "$(psql_q postgres "SELECT 1 FROM pg_database WHERE datname = '$1'")" != 1 ]; then
    say "creating database $1"
    psql_q postgres "CREATE DATABASE \"$1\"" ||
      [ "$(psql_q postgres "SELECT 1 FROM pg_database WHERE datname = '$1'")" = 1 ]
  fi
}

# The application role is cluster-wide: created once (concurrent starts tolerate each other), and
# given LOGIN if migration 0006 created it first as a bare group role.
ensure_app_role() {
  psql_q postgres "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'parley_app') THEN
        BEGIN CREATE ROLE parley_app LOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
      END IF;
      ALTER ROLE parley_app LOGIN NOSUPERUSER NOBYPASSRLS;
    END \$\$" >/dev/null
}

cmd_start() {
  need_binaries
  if running; then
    local port
    port=$(running_port)
    if [ "$port" != "$PG_PORT" ]; then
      die "our cluster (var/pg) is already running on port $port, not $PG_PORT; stop it first \
(deploy/local/pg.sh stop) or set PARLEY_PG_PORT=$port"
    fi
    say "already running on 127.0.0.1:$PG_PORT (pid $(running_pid))"
    ensure_app_role
    ensure_database parley
    return 0
  fi
  if port_in_use "$PG_PORT"; then
    die "port $PG_PORT is in use by another process; set PARLEY_PG_PORT to a free port \
(e.g. PARLEY_PG_PORT=$((PG_PORT + 1)))"
  fi
  ensure_var_dirs
  make_traversable
  init_cluster
  write_settings
  touch "$PG_LOG"
  own_by_pg "$PG_DATA" "$RUN_DIR" "$PG_LOG"
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null; then
    log_tail "$PG_LOG"
    die "PostgreSQL did not start (log: var/log/postgres.log)"
  fi
  say "started on 127.0.0.1:$PG_PORT (data var/pg, log var/log/postgres.log)"
  ensure_app_role
  ensure_database parley
}

cmd_stop() {
  if ! running; then
    say "not running"
    return 0
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null 2>&1; then
    # Someone else (a concurrent make stop) may have stopped it first.
    if running; then
      log_tail "$PG_LOG"
      die "PostgreSQL did not stop within 60 s"
    fi
  fi
  say "stopped"
}

cmd_status() {
  if running; then
    say "running on 127.0.0.1:$(running_port) (pid $(running_pid), data var/pg)"
    return 0
  fi
  say "stopped"
  return 3
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
url) printf 'postgresql://postgres@127.0.0.1:%s/%s\n' "$PG_PORT" "${2:-parley}" ;;
app-url) local_uri parley_app "${2:-parley}" ;;
local-url) local_uri postgres "${2:-parley}" ;;
*)
  printf 'usage: %s {start|stop|status|url [DB]|app-url [DB]|local-url [DB]}\n' "$0" >&2
  exit 2
  ;;
esac
