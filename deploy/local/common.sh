# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts sourcing this
# Shared by the deploy/local scripts: where things live and small helpers. Sourced, never run.

PARLEY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
VAR_DIR="$PARLEY_ROOT/var"
RUN_DIR="$VAR_DIR/run"
LOG_DIR="$VAR_DIR/log"
PG_PORT="${PARLEY_PG_PORT:-55432}"
REDIS_PORT="${PARLEY_REDIS_PORT:-56379}"
PG_BIN="${PARLEY_PG_BIN:-/usr/lib/postgresql/15/bin}"

die() {
  printf '%s: error: %s\n' "${LOG_TAG:-parley}" "$*" >&2
  exit 1
}

say() { printf '%s: %s\n' "${LOG_TAG:-parley}" "$*"; }

is_root() { [ "$(id -u)" -eq 0 ]; }

check_port_number() { # name value
  case "$2" in
  '' | *[!0-9]*) die "$1=$2 is not a port number" ;;
  esac
  if [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then
    die "$1=$2 is not a port number (1-65535)"
  fi
}

# True when something accepts TCP connections on 127.0.0.1:port (a listener on 0.0.0.0 counts:
# it would take our connections too).
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A process is alive unless gone or a zombie: daemons are reparented to PID 1, and in a container
# whose PID 1 does not reap, an exited daemon stays a zombie that "kill -0" still finds.
# Sends SIGTERM to parley and waits up to 30 s for it to drain, then SIGKILL.
stop_parley_pid() { # pid
  local pid=$1 i
  say "stopping parley (pid $pid): SIGTERM, waiting for it to drain"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  say "parley did not exit within 30 s of SIGTERM; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

alive() { # pid
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null || true)
  stat=${stat##*) }
  [ -n "$stat" ] && [ "${stat%% *}" != Z ]
}

# Last lines of a log file, indented, for error messages.
log_tail() { # file [lines]
  if [ -s "$1" ]; then
    printf -- '--- last lines of %s ---\n' "$1" >&2
    tail -n "${2:-20}" "$1" | sed 's/^/  /' >&2
  fi
}

# The directories every service writes to. var/ is git-ignored.
ensure_var_dirs() {
  mkdir -p "$VAR_DIR" "$RUN_DIR" "$LOG_DIR"
  # A umask of 077 (common in CI) would make var/ unreadable to the postgres user.
  chmod 755 "$VAR_DIR" "$RUN_DIR" "$LOG_DIR"
}

DEPLOY_DIR="$PARLEY_ROOT/deploy/local"

# Starts the private servers named (pg, redis) and remembers which ones this process started, so
# that stop_started_services leaves alone whatever was already running (e.g. a make run).
STARTED_SERVICES=()
start_services() {
  local svc
  for svc in "$@"; do
    if ! bash "$DEPLOY_DIR/$svc.sh" status >/dev/null 2>&1; then
      STARTED_SERVICES+=("$svc")
    fi
    bash "$DEPLOY_DIR/$svc.sh" start
  done
}

stop_started_services() {
  local i
  for ((i = ${#STARTED_SERVICES[@]} - 1; i >= 0; i--)); do
    bash "$DEPLOY_DIR/${STARTED_SERVICES[i]}.sh" stop || true
  done
  STARTED_SERVICES=()
}
