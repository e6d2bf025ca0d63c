#!/usr/bin/env bash
# What `make bench` runs after the build: every benchmark executable (build/bench/*/bench_*)
# against the private PostgreSQL and Redis, one after the other, printing their figures.
# Servers this script starts are stopped at the end; servers already running are left alone.
#
# Environment: PARLEY_BENCH_FILTER (passed as --benchmark_filter=), PARLEY_PG_PORT,
# PARLEY_REDIS_PORT.
set -euo pipefail

LOG_TAG=bench
# shellcheck source=deploy/local/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BENCH_DIR="$PARLEY_ROOT/build/bench"

benches=()
if [ -d "$BENCH_DIR" ]; then
  while IFS= read -r -d '' exe; do
    benches+=("$exe")
  done < <(find "$BENCH_DIR" -path '*/CMakeFiles' -prune -o -type f -name 'bench_*' -perm -u+x \
    -print0 | sort -z)
fi
if [ "${#benches[@]}" -eq 0 ]; then
  die "no benchmark executables under build/bench/ (run make build first)"
fi

trap stop_started_services EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_services pg redis
PARLEY_BENCH_PG_URL=$(bash "$DEPLOY_DIR/pg.sh" local-url postgres)
PARLEY_BENCH_REDIS_URL=$(bash "$DEPLOY_DIR/redis.sh" url)
export PARLEY_BENCH_PG_URL PARLEY_BENCH_REDIS_URL

args=()
if [ -n "${PARLEY_BENCH_FILTER:-}" ]; then
  args+=("--benchmark_filter=$PARLEY_BENCH_FILTER")
fi

failed=()
for exe in "${benches[@]}"; do
  printf '\n=== %s ===\n' "${exe#"$PARLEY_ROOT"/}"
  if ! "$exe" "${args[@]}"; then
    failed+=("${exe#"$PARLEY_ROOT"/}")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  printf 'bench: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
