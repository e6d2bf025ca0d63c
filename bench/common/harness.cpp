#include "bench/common/harness.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <unistd.h>

#include "bench/common/load.hpp"
#include "domain/crypto.hpp"
#include "persistence/connection.hpp"

namespace parley::bench {

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::string locate_parley(const std::string& explicit_path) {
  std::string bin = explicit_path.empty() ? env_or("PARLEY_BIN") : explicit_path;
  if (bin.empty()) {
    auto self = std::filesystem::canonical("/proc/self/exe");
    bin = (self.parent_path().parent_path().parent_path() / "parley").string();
  }
  if (access(bin.c_str(), X_OK) != 0)
    throw std::runtime_error("parley binary not found at " + bin +
                             " (build it, or pass --parley PATH / set PARLEY_BIN)");
  return bin;
}

std::string admin_database_url() {
  auto url = env_or("PARLEY_BENCH_PG_URL", env_or("PARLEY_TEST_PG_URL"));
  if (url.empty())
    throw std::runtime_error(
        "PARLEY_BENCH_PG_URL is not set: run through `make bench`, or export a "
        "superuser URL such as postgresql://postgres@127.0.0.1:55432/postgres");
  return url;
}

scratch_database::scratch_database(std::string admin_url, const std::string& prefix, bool keep)
    : admin_url_(std::move(admin_url))
    , keep_(keep) {
  name_ = prefix + crypto::random_hex(6);
  url_ = persistence::with_database(admin_url_, name_);
  exec_admin("CREATE DATABASE \"" + name_ + "\"");
  // Roles are cluster-wide: creation tolerates one made concurrently.
  exec_admin("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'parley_app') "
             "THEN BEGIN CREATE ROLE parley_app LOGIN; EXCEPTION WHEN duplicate_object OR "
             "unique_violation THEN NULL; END; END IF; ALTER ROLE parley_app LOGIN; END $$");
}

std::string scratch_database::app_url() const {
  auto scheme_end = url_.find("://");
  if (scheme_end == std::string::npos)
    return url_;
  auto at = url_.find('@', scheme_end);
  auto host_from = at == std::string::npos ? scheme_end + 3 : at + 1;
  return url_.substr(0, scheme_end + 3) + "parley_app@" + url_.substr(host_from);
}

scratch_database::~scratch_database() {
  if (keep_) {
    std::printf("scratch database kept: %s\n", name_.c_str());
    return;
  }
  try {
    exec_admin("DROP DATABASE IF EXISTS \"" + name_ + "\" WITH (FORCE)");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "could not drop %s: %s\n", name_.c_str(), e.what());
  }
}

void scratch_database::exec_admin(const std::string& sql) {
  pqxx::connection c{admin_url_};
  pqxx::nontransaction tx{c};
  tx.exec(sql);
}

pqxx::result bench_db::query(const std::string& sql) {
  pqxx::nontransaction tx{conn_};
  return tx.exec(sql);
}

int64_t bench_db::scalar(const std::string& sql) {
  auto r = query(sql);
  return r[0][0].is_null() ? 0 : r[0][0].as<int64_t>();
}

cpu_sample sample_cpu(bench_db& db, const std::string& dbname, pid_t parley_pid) {
  cpu_sample s;
  s.parley = process_cpu_seconds(parley_pid);
  // The background processes are shared with whatever else uses the cluster, but they work for
  // our commits during a run.
  auto rows = db.query("SELECT pid FROM pg_stat_activity WHERE datname = '" + dbname +
                       "' OR backend_type IN ('walwriter', 'checkpointer', 'background writer')");
  for (const auto& r : rows) {
    auto pid = r[0].as<int>();
    s.postgres[pid] = process_cpu_seconds(pid);
  }
  s.self = process_cpu_seconds(getpid());
  s.machine = machine_cpu_seconds();
  return s;
}

cpu_share cpu_between(const cpu_sample& a, const cpu_sample& b, double seconds) {
  cpu_share c;
  c.parley = (b.parley - a.parley) / seconds;
  double pg = 0;
  for (const auto& [pid, t] : b.postgres) {
    auto it = a.postgres.find(pid);
    pg += t - (it == a.postgres.end() ? 0 : it->second);
  }
  c.postgres = pg / seconds;
  c.loadgen = (b.self - a.self) / seconds;
  c.machine = (b.machine.busy - a.machine.busy) / seconds;
  c.steal = (b.machine.steal - a.machine.steal) / seconds;
  c.other = std::max(0.0, c.machine - c.parley - c.postgres - c.loadgen - c.steal);
  return c;
}

double process_memory_mb(pid_t pid, const std::string& field) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) != 0)
      continue;
    std::istringstream v{line.substr(field.size() + 1)};
    double kb = 0;
    v >> kb;
    return kb / 1024.0;
  }
  return NAN;
}

scrape scrape_metrics(uint16_t port) {
  scrape out;
  auto reply = http_call("127.0.0.1", port, "GET", "/metrics", "");
  std::istringstream in{reply.body};
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#')
      continue;
    auto sp = line.rfind(' ');
    if (sp == std::string::npos)
      continue;
    try {
      out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    } catch (const std::exception&) {
    }
  }
  return out;
}

double delta(const scrape& a, const scrape& b, const std::string& series) {
  auto get = [&](const scrape& s) {
    auto it = s.find(series);
    return it == s.end() ? 0.0 : it->second;
  };
  return get(b) - get(a);
}

double histogram_quantile(const scrape& a, const scrape& b, const std::string& family, double q) {
  std::vector<std::pair<double, double>> buckets; // le -> cumulative count in the interval
  std::string prefix = family + "_bucket{le=\"";
  for (const auto& [series, value] : b) {
    if (series.rfind(prefix, 0) != 0)
      continue;
    auto le_text = series.substr(prefix.size(), series.size() - prefix.size() - 2);
    double le = le_text == "+Inf" ? INFINITY : std::stod(le_text);
    buckets.emplace_back(le, value - (a.count(series) ? a.at(series) : 0.0));
  }
  std::sort(buckets.begin(), buckets.end());
  if (buckets.empty() || buckets.back().second <= 0)
    return NAN;
  double want = q * buckets.back().second;
  for (const auto& [le, n] : buckets)
    if (n >= want)
      return le;
  return INFINITY;
}

double percentile_ms(std::vector<uint32_t>& v, double q) {
  if (v.empty())
    return NAN;
  auto k = static_cast<size_t>(std::min<double>(static_cast<double>(v.size()) - 1,
                                                std::ceil(q * static_cast<double>(v.size())) - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k] / 1000.0;
}

std::string fmt(const char* f, double v) {
  if (std::isnan(v))
    return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string thousands(double v) {
  auto s = std::to_string(static_cast<long long>(std::llround(v)));
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<size_t>(i), ",");
  return s;
}

} // namespace parley::bench
