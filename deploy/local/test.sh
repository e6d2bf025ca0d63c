#!/usr/bin/env bash
# What `make test` runs after the build: the whole suite through ctest against the private
# PostgreSQL and Redis, then the unit tests again under AddressSanitizer + UBSan (build-asan/).
# Servers this script starts are stopped at the end; servers already running are left alone.
#
# Then each libFuzzer target (clang) runs briefly over the internet-facing parsers (build-fuzz/).
#
# Environment: PARLEY_TEST_JOBS (ctest parallelism, default 2), PARLEY_SANITIZE_PASS=0 skips the
# sanitizer pass, PARLEY_FUZZ_PASS=0 skips the fuzz pass, PARLEY_FUZZ_SECONDS (default 20 per
# target), PARLEY_PG_PORT / PARLEY_REDIS_PORT as for pg.sh / redis.sh.
set -euo pipefail

LOG_TAG="test"
# shellcheck source=deploy/local/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BUILD_DIR="$PARLEY_ROOT/build"
ASAN_DIR="$PARLEY_ROOT/build-asan"
FUZZ_DIR="$PARLEY_ROOT/build-fuzz"
JOBS="${PARLEY_TEST_JOBS:-2}"
BUILD_JOBS="${PARLEY_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"

[ -f "$BUILD_DIR/CTestTestfile.cmake" ] || die "build/ is not configured: run make build first"

# The build tool must not inherit the jobserver flags of the make that runs us.
unset MAKEFLAGS MFLAGS MAKELEVEL

trap stop_started_services EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_services pg redis
PARLEY_TEST_PG_URL=$(bash "$DEPLOY_DIR/pg.sh" url postgres)
PARLEY_TEST_REDIS_URL=$(bash "$DEPLOY_DIR/redis.sh" url)
PARLEY_BIN="$BUILD_DIR/parley"
export PARLEY_TEST_PG_URL PARLEY_TEST_REDIS_URL PARLEY_BIN
say "PARLEY_TEST_PG_URL=$PARLEY_TEST_PG_URL PARLEY_TEST_REDIS_URL=$PARLEY_TEST_REDIS_URL"

failed=()
passed_total=0
failed_total=0
ctest_log=$(mktemp)
trap 'rm -f "$ctest_log"; stop_started_services' EXIT

# Adds the counts of ctest's closing line ("100% tests passed, 0 tests failed out of 183").
count_ctest() {
  local line fails total
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$ctest_log" | tail -n 1 || true)
  [ -n "$line" ] || return 0
  fails=$(sed -E 's/.*, ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
  total=$(sed -E 's/.*, ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
  passed_total=$((passed_total + total - fails))
  failed_total=$((failed_total + fails))
}

say "ctest in build/ (unit + integration, -j$JOBS)"
if ! ctest --test-dir "$BUILD_DIR" --output-on-failure --no-tests=error -j "$JOBS" --timeout 600 \
  | tee "$ctest_log"; then
  failed+=("ctest in build/")
fi
count_ctest

if [ "${PARLEY_SANITIZE_PASS:-1}" != 0 ]; then
  say "sanitizer pass: unit tests and the binary built with -DPARLEY_SANITIZE=ON in build-asan/; the integration tests drive that binary"
  asan_ok=1
  if [ ! -f "$ASAN_DIR/CMakeCache.txt" ]; then
    # -O1 is what ASan recommends; it also keeps this second build short.
    cmake -S "$PARLEY_ROOT" -B "$ASAN_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARLEY_SANITIZE=ON \
      -DPARLEY_BENCH=OFF -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" ||
      asan_ok=0
  fi
  if [ "$asan_ok" = 1 ]; then
    # The unit-test executables (custom target unit_tests) and the binary the integration tests
    # start (their PARLEY_BIN is this build's parley); without those targets, everything.
    # (Captured first: grep -q would end the pipe early, and pipefail would call that a failure.)
    targets=$(cmake --build "$ASAN_DIR" --target help 2>/dev/null || true)
    target=(--target unit_tests parley)
    if ! grep -qE '(^|[ .])unit_tests( |$)' <<<"$targets"; then
      say "warning: no unit_tests target in build-asan/; building every target"
      target=()
    fi
    cmake --build "$ASAN_DIR" "${target[@]}" -j "$BUILD_JOBS" || asan_ok=0
  fi
  if [ "$asan_ok" = 1 ]; then
    lsan_supp="$DEPLOY_DIR/lsan.supp"
    ubsan_supp="$DEPLOY_DIR/ubsan.supp"
    if ! ASAN_OPTIONS="detect_leaks=1:strict_init_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
      LSAN_OPTIONS="suppressions=$lsan_supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}" \
      UBSAN_OPTIONS="suppressions=$ubsan_supp:print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
      ctest --test-dir "$ASAN_DIR" -L '^(unit|integration)$' --output-on-failure --no-tests=error \
      -j "$JOBS" --timeout 600 | tee "$ctest_log"; then
      failed+=("ctest -L 'unit|integration' in build-asan/")
    fi
    count_ctest
  else
    failed+=("sanitizer build (build-asan/)")
  fi
fi

if [ "${PARLEY_FUZZ_PASS:-1}" != 0 ]; then
  if command -v clang++ >/dev/null 2>&1; then
    seconds="${PARLEY_FUZZ_SECONDS:-20}"
    say "fuzz pass: libFuzzer targets built with clang in build-fuzz/, ${seconds}s each"
    fuzz_ok=1
    if [ ! -f "$FUZZ_DIR/CMakeCache.txt" ]; then
      cmake -S "$PARLEY_ROOT" -B "$FUZZ_DIR" -DCMAKE_CXX_COMPILER=clang++ -DPARLEY_FUZZ=ON \
        -DPARLEY_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || fuzz_ok=0
    fi
    fuzzers=(fuzz_webhook fuzz_router_query fuzz_outbound)
    if [ "$fuzz_ok" = 1 ]; then
      cmake --build "$FUZZ_DIR" --target "${fuzzers[@]}" -j "$BUILD_JOBS" || fuzz_ok=0
    fi
    if [ "$fuzz_ok" = 1 ]; then
      for f in "${fuzzers[@]}"; do
        bin=$(find "$FUZZ_DIR" -type f -name "$f" -perm -u+x | head -n 1)
        corpus="$FUZZ_DIR/corpus/$f"
        mkdir -p "$corpus"
        seeds=()
        [ "$f" = fuzz_webhook ] && seeds=("$PARLEY_ROOT/tests/fixtures/pywa")
        [ "$f" = fuzz_outbound ] && seeds=("$PARLEY_ROOT/tests/fixtures/outbound")
        if "$bin" -max_total_time="$seconds" -max_len=65536 -print_final_stats=0 \
          "$corpus" "${seeds[@]}" >"$FUZZ_DIR/$f.log" 2>&1; then
          passed_total=$((passed_total + 1))
          say "$f: no crash in ${seconds}s"
        else
          failed_total=$((failed_total + 1))
          tail -n 40 "$FUZZ_DIR/$f.log" >&2
          failed+=("$f found a crash (see build-fuzz/$f.log)")
        fi
      done
    else
      failed+=("fuzz build (build-fuzz/)")
    fi
  else
    say "warning: clang++ missing, fuzz pass skipped (make deps installs it)"
  fi
fi

# Servers are stopped first so that the last line is the summary, in the plain form CI reads,
# covering every pass.
rm -f "$ctest_log"
trap - EXIT
stop_started_services
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'test: FAILED: %s\n' "${failed[@]}" >&2
  echo "parley: ${passed_total} passed, ${failed_total} failed"
  exit 1
fi
say "all tests passed"
echo "parley: ${passed_total} passed, ${failed_total} failed"
