# Parley: `make run` and `make test` are all a new machine needs (Debian 12, root, apt reachable).
# The real work lives in deploy/local/*.sh so it can be run and read on its own.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.NOTPARALLEL:
MAKEFLAGS += --no-print-directory

BUILD_DIR := build
ASAN_DIR := build-asan
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
LOCAL := deploy/local

# cmake's own make must not inherit this make's flags and jobserver.
CMAKE_BUILD := env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL cmake --build

# Our C++ sources: everything but build trees, var/ and .git (NUL-separated, for xargs -0).
FIND_SOURCES := find . \( -path ./.git -o -path ./var -o -path './build*' \) -prune -o -type f \
  \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.cc' \) -print0

.PHONY: help deps build run test bench stop clean distclean format format-check

help:
	@echo 'Parley - the two commands:'
	@echo '  make run           install missing packages, build, start private PostgreSQL 15 and Redis'
	@echo '                     under ./var (127.0.0.1:55432 / :56379), migrate, start Parley on'
	@echo '                     http://127.0.0.1:8080 with a demo tenant and print curl commands'
	@echo '  make test          the same set-up, then every test through ctest, then the unit tests'
	@echo '                     again under AddressSanitizer + UBSan'
	@echo 'Other targets:'
	@echo '  make deps          apt-get install whatever is missing (nothing if all is there)'
	@echo '  make build         configure build/ ($(BUILD_TYPE)) once and build it (build/parley)'
	@echo '  make bench         run every benchmark (build/bench/*/bench_*) against the private servers'
	@echo '  make stop          stop Parley (if make run left it), Redis and PostgreSQL'
	@echo '  make format        clang-format -i our sources; make format-check only checks'
	@echo '  make clean         remove build/ and build-asan/; make distclean also removes var/ (data!)'
	@echo 'Environment: PARLEY_HTTP_PORT (8080), PARLEY_PG_PORT (55432), PARLEY_REDIS_PORT (56379),'
	@echo '             JOBS (build parallelism, default nproc), PARLEY_TEST_JOBS (ctest -j, default 2),'
	@echo '             PARLEY_SANITIZE_PASS=0 (make test without the sanitizer pass)'

deps:
	@bash $(LOCAL)/install-deps.sh

build: deps
	@if [ ! -f $(BUILD_DIR)/CMakeCache.txt ]; then \
	  cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE); \
	fi
	@$(CMAKE_BUILD) $(BUILD_DIR) -j$(JOBS)
	@test -x $(BUILD_DIR)/parley || { echo 'build: $(BUILD_DIR)/parley was not produced' >&2; exit 1; }

run: build
	@bash $(LOCAL)/run.sh

test: build
	@PARLEY_BUILD_JOBS=$(JOBS) bash $(LOCAL)/test.sh

bench: build
	@bash $(LOCAL)/bench.sh

stop:
	@bash $(LOCAL)/stop.sh

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)

distclean: stop clean
	rm -rf var

format:
	@command -v clang-format >/dev/null || { echo 'clang-format missing: make deps' >&2; exit 1; }
	@$(FIND_SOURCES) | xargs -0 -r clang-format -i

format-check:
	@command -v clang-format >/dev/null || { echo 'clang-format missing: make deps' >&2; exit 1; }
	@$(FIND_SOURCES) | xargs -0 -r clang-format --dry-run -Werror
