#pragma once
// What every benchmark driving the real `parley serve` needs besides load and the child process:
// a scratch database, the bench's own queries, CPU accounting per process, Prometheus scrapes,
// and the figures' formatting.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <pqxx/pqxx>
#include <sys/types.h>

#include "bench/common/process.hpp"

namespace parley::bench {

/// The environment variable `name`, or `fallback` when unset or empty.
std::string env_or(const char* name, std::string fallback = {});

/// The server binary: `explicit_path`, else $PARLEY_BIN, else build/parley next to
/// build/bench/<name>/bench_<name>. Throws when it is not executable.
std::string locate_parley(const std::string& explicit_path);

/// The superuser URL of PARLEY_BENCH_PG_URL (or PARLEY_TEST_PG_URL); throws when neither is set.
std::string admin_database_url();

/// CREATE DATABASE <prefix><random> on construction, DROP ... WITH (FORCE) on destruction
/// (unless kept).
class scratch_database {
public:
  scratch_database(std::string admin_url, const std::string& prefix, bool keep);
  ~scratch_database();
  scratch_database(const scratch_database&) = delete;
  scratch_database& operator=(const scratch_database&) = delete;

  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }
  const std::string& admin_url() const { return admin_url_; }
  /// url() as the application role `parley_app` (created on construction; no password: the
  /// local cluster trusts loopback). Parley serves as this role, which Row Level Security binds,
  /// and migrates as url() (PARLEY_DB_MIGRATE_URL).
  std::string app_url() const;

private:
  void exec_admin(const std::string& sql);
  std::string admin_url_, name_, url_;
  bool keep_;
};

/// The bench's own queries on the scratch database (one connection, reused).
class bench_db {
public:
  explicit bench_db(const std::string& url)
      : conn_(url) {}

  pqxx::result query(const std::string& sql);
  /// The first column of the first row; 0 when NULL.
  int64_t scalar(const std::string& sql);

private:
  pqxx::connection conn_;
};

/// CPU seconds so far of parley, the PostgreSQL processes serving it, this process and the machine.
struct cpu_sample {
  double parley = 0;
  std::map<int, double> postgres; ///< pid -> seconds
  double self = 0;
  machine_cpu machine;
};

/// Backends of `dbname` plus the WAL writer, checkpointer and background writer.
cpu_sample sample_cpu(bench_db& db, const std::string& dbname, pid_t parley_pid);

struct cpu_share { ///< cores used on average over an interval
  double parley = 0, postgres = 0, loadgen = 0, other = 0, machine = 0;
  double steal = 0; ///< part of machine: the hypervisor's, not ours (see machine_cpu)
};

cpu_share cpu_between(const cpu_sample& a, const cpu_sample& b, double seconds);

/// A process's memory from /proc/<pid>/status in MB: `field` is "VmRSS" or "VmHWM" (peak).
double process_memory_mb(pid_t pid, const std::string& field);

using scrape = std::map<std::string, double>; ///< series (name + labels) -> value

/// GET /metrics, parsed.
scrape scrape_metrics(uint16_t port);

/// b[series] - a[series], absent series counting 0.
double delta(const scrape& a, const scrape& b, const std::string& series);

/// A quantile of an unlabelled histogram between two scrapes, from its buckets (upper bound of the
/// bucket holding it, so an over-estimate by at most one bucket).
double histogram_quantile(const scrape& a, const scrape& b, const std::string& family, double q);

/// The q-quantile of microsecond latencies, in ms (NAN when empty). Reorders `v`.
double percentile_ms(std::vector<uint32_t>& v, double q);

/// printf of one double; "n/a" for NAN.
std::string fmt(const char* f, double v);

/// 12345.6 -> "12,346".
std::string thousands(double v);

} // namespace parley::bench
