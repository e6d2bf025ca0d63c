#!/usr/bin/env bash
# What `make stop` runs: stops a Parley started by run.sh (SIGTERM, it drains), then the private
# Redis and PostgreSQL. Safe to run when nothing is running.
set -euo pipefail

LOG_TAG=stop
# shellcheck source=deploy/local/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PARLEY_PID_FILE="$RUN_DIR/parley.pid"

pid=$(cat "$PARLEY_PID_FILE" 2>/dev/null || true)
case "$pid" in
'' | *[!0-9]*) pid="" ;;
esac
if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = parley ]; then
  stop_parley_pid "$pid"
else
  say "parley is not running"
fi
rm -f "$PARLEY_PID_FILE"

bash "$DEPLOY_DIR/redis.sh" stop
bash "$DEPLOY_DIR/pg.sh" stop
