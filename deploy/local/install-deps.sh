#!/usr/bin/env bash
# Installs the Debian 12 packages Parley needs to build, test and run locally, and only those that
# are missing: a second run does nothing and needs neither the network nor root.
set -euo pipefail

LOG_TAG=deps
# shellcheck source=deploy/local/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

packages=(
  # toolchain
  build-essential make g++ cmake ccache pkg-config
  # libraries (CAF 0.17.6, Boost 1.74 for Beast/Asio, libpqxx 6.4, hiredis, ...)
  libcaf-dev libboost-dev libpqxx-dev libpq-dev libhiredis-dev nlohmann-json3-dev libspdlog-dev
  libfmt-dev libssl-dev libcli11-dev libjemalloc-dev libsimdjson-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  # HTTP load generator of the ingestion benchmark
  wrk
  # the private servers of make run / make test (postgresql-common may also start a system
  # cluster on 5432; we never use it)
  postgresql-15 postgresql-client-15 redis-server redis-tools
  # promtool checks the metrics exposition and alert rules; systemd-analyze the unit file
  prometheus systemd
  # scripts, demo set-up and secrets; python3-yaml: the alert-rule test reads and writes the
  # rules' YAML (promtool's rule unit tests)
  python3 python3-yaml curl openssl ca-certificates
  # fuzzing, sanitizers, formatting
  clang libclang-rt-14-dev clang-format
)

if ! command -v dpkg-query >/dev/null 2>&1; then
  die "dpkg-query not found: these scripts expect Debian 12 (bookworm)"
fi

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [ "$status" != installed ]; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  say "all ${#packages[@]} packages are installed"
  exit 0
fi

say "installing ${#missing[@]} missing package(s): ${missing[*]}"

sudo=()
if ! is_root; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
  else
    die "root is needed to install packages (run as root, or install: ${missing[*]})"
  fi
fi

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef
  -o Dpkg::Options::=--force-confold)
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install "${missing[@]}"

still_missing=()
for pkg in "${missing[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = installed ] || still_missing+=("$pkg")
done
if [ "${#still_missing[@]}" -gt 0 ]; then
  die "still not installed after apt-get: ${still_missing[*]}"
fi
say "done"
