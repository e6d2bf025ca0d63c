#!/usr/bin/env bash
# A private Redis for development and tests: data (AOF) in var/redis, pid in var/run/redis.pid,
# log in var/log/redis.log, listening on 127.0.0.1:$PARLEY_REDIS_PORT (default 56379) only.
#
#   redis.sh start       start (idempotent)
#   redis.sh stop        shut down, flushing the AOF (idempotent)
#   redis.sh status      exit 0 when running, 3 when stopped
#   redis.sh url         redis://127.0.0.1:PORT
set -euo pipefail

LOG_TAG=redis
# shellcheck source=deploy/local/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REDIS_DIR="$VAR_DIR/redis"
REDIS_CONF="$REDIS_DIR/redis.conf"
REDIS_PID="$RUN_DIR/redis.pid"
REDIS_LOG="$LOG_DIR/redis.log"
check_port_number PARLEY_REDIS_PORT "$REDIS_PORT"

# The pid file alone is not proof: after a reboot the pid may belong to someone else.
running_pid() {
  local pid
  pid=$(cat "$REDIS_PID" 2>/dev/null || true)
  case "$pid" in
  '' | *[!0-9]*) return 1 ;;
  esac
  [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = redis-server ] || return 1
  alive "$pid" || return 1
  printf '%s\n' "$pid"
}

# The port of the running server is the one in the config it was started with.
running_port() { sed -n 's/^port \([0-9]*\)$/\1/p' "$REDIS_CONF" 2>/dev/null || true; }

ping() { # port
  [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null || true)" = PONG ]
}

quote() { # a value for redis.conf: double-quoted, backslashes and quotes escaped
  local v=${1//\\/\\\\}
  printf '"%s"' "${v//\"/\\\"}"
}

write_config() {
  cat >"$REDIS_CONF" <<EOF
# Written by deploy/local/redis.sh on each start.
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize yes
dir $(quote "$REDIS_DIR")
pidfile $(quote "$REDIS_PID")
logfile $(quote "$REDIS_LOG")
appendonly yes
appendfsync everysec
EOF
}

cmd_start() {
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found (run: make deps)"
  command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found (run: make deps)"
  local pid
  if pid=$(running_pid); then
    local port
    port=$(running_port)
    if [ "$port" != "$REDIS_PORT" ]; then
      die "our Redis is already running on port $port, not $REDIS_PORT; stop it first \
(deploy/local/redis.sh stop) or set PARLEY_REDIS_PORT=$port"
    fi
    say "already running on 127.0.0.1:$REDIS_PORT (pid $pid)"
    return 0
  fi
  if port_in_use "$REDIS_PORT"; then
    die "port $REDIS_PORT is in use by another process; set PARLEY_REDIS_PORT to a free port \
(e.g. PARLEY_REDIS_PORT=$((REDIS_PORT + 1)))"
  fi
  ensure_var_dirs
  mkdir -p "$REDIS_DIR"
  rm -f "$REDIS_PID"
  write_config
  if ! redis-server "$REDIS_CONF" >/dev/null 2>&1; then
    log_tail "$REDIS_LOG"
    die "redis-server failed to start (log: var/log/redis.log)"
  fi
  local i
  for ((i = 0; i < 100; i++)); do
    if ping "$REDIS_PORT"; then
      say "started on 127.0.0.1:$REDIS_PORT (data var/redis, log var/log/redis.log)"
      return 0
    fi
    sleep 0.1
  done
  log_tail "$REDIS_LOG"
  die "Redis did not answer PING on 127.0.0.1:$REDIS_PORT within 10 s"
}

cmd_stop() {
  local pid
  if ! pid=$(running_pid); then
    say "not running"
    rm -f "$REDIS_PID"
    return 0
  fi
  # SIGTERM makes Redis fsync the AOF and exit cleanly.
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 300; i++)); do
    if ! alive "$pid"; then
      rm -f "$REDIS_PID"
      say "stopped"
      return 0
    fi
    sleep 0.1
  done
  log_tail "$REDIS_LOG"
  die "Redis (pid $pid) did not stop within 30 s"
}

cmd_status() {
  local pid
  if pid=$(running_pid); then
    say "running on 127.0.0.1:$(running_port) (pid $pid, data var/redis)"
    return 0
  fi
  say "stopped"
  return 3
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
url) printf 'redis://127.0.0.1:%s\n' "$REDIS_PORT" ;;
*)
  printf 'usage: %s {start|stop|status|url}\n' "$0" >&2
  exit 2
  ;;
esac
