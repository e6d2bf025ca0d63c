// Outbound sending through the real `parley serve`: template sends over 64 keep-alive loopback
// connections to `POST /v1/messages`, spread over 100 tenants x 10 channels whose Graph API is a
// fake in this process. The throughput run reports accepted (202) sends/s, acceptance latency,
// messages/s reaching the fake end to end (first send to the last message at the fake, after the
// outbox drained), checks that the fake received every accepted message and that the database
// shows them all `sent`, and shows where the CPU went and parley's peak memory. The rate-limit
// run enqueues 35 s worth of messages on one 80 mps channel and measures what the fake receives
// per second.
//
// Usage: bench_outbound [--duration S] [--connections N] [--tenants N] [--channels-per-tenant N]
//          [--throughput-mps N] [--graph-latency-ms N] [--rate-mps N] [--rate-seconds S]
//          [--drain-wait S] [--parley PATH] [--server-env KEY=VALUE]... [--keep-db]
// Needs PARLEY_BENCH_PG_URL (or PARLEY_TEST_PG_URL): a superuser libpq URI; `make bench` sets it.
// Exits 1 when accepted messages are lost (never received by the fake) or the database disagrees,
// not when a target is missed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/common/cli.hpp"
#include "bench/common/harness.hpp"
#include "bench/common/load.hpp"
#include "bench/common/process.hpp"
#include "bench/outbound/fake_graph.hpp"
#include "domain/crypto.hpp"

using namespace std::chrono_literals;

namespace parley::bench {

namespace {

constexpr const char* bench_name = "outbound";

// Targets of docs/performance.md, printed next to the figures.
constexpr double target_msgs_per_s = 5000;
constexpr double target_rss_mb = 200;
constexpr double rate_tolerance = 0.05;

using clk = std::chrono::steady_clock;

struct options : server_options {
  double duration_s = 20;
  int connections = 64;
  int tenants = 100;
  int channels_per_tenant = 10;
  int throughput_mps = 80;
  int graph_latency_ms = 0;
  int rate_mps = 80;
  int rate_seconds = 30;
};

options parse_args(int argc, char** argv) {
  options o;
  o.drain_wait_s = 120;
  CLI::App app{"Outbound throughput and rate-limit accuracy through the real parley serve"};
  app.add_option("--duration", o.duration_s, "seconds of the throughput run")
      ->check(CLI::PositiveNumber);
  app.add_option("--connections", o.connections, "keep-alive connections")
      ->check(CLI::PositiveNumber);
  app.add_option("--tenants", o.tenants, "tenants")->check(CLI::PositiveNumber);
  app.add_option("--channels-per-tenant", o.channels_per_tenant, "channels per tenant")
      ->check(CLI::PositiveNumber);
  app.add_option("--throughput-mps", o.throughput_mps, "throughput_mps of every channel")
      ->check(CLI::PositiveNumber);
  app.add_option("--graph-latency-ms", o.graph_latency_ms, "added latency of the fake Graph API")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--rate-mps", o.rate_mps, "throughput_mps of the rate-limit channel")
      ->check(CLI::PositiveNumber);
  app.add_option("--rate-seconds", o.rate_seconds, "seconds the rate-limit run measures")
      ->check(CLI::PositiveNumber);
  add_server_options(app, o);
  parse_or_exit(app, argc, argv);
  return o;
}

// ---- set-up ---------------------------------------------------------------------------------

struct channel_ref {
  std::string api_key;
  std::string channel_id;
  std::string phone_number_id;
};

nlohmann::json admin_post(uint16_t port, const std::string& admin_token, const std::string& target,
                          const nlohmann::json& body) {
  auto r = http_call("127.0.0.1", port, "POST", target, body.dump(), admin_token);
  if (r.status != 201)
    throw std::runtime_error("POST " + target + " answered " + std::to_string(r.status) + ": " +
                             r.body);
  return nlohmann::json::parse(r.body);
}

/// `tenants` tenants, each with an API key and `per_tenant` channels sending to `graph_url`.
std::vector<channel_ref> create_channels(uint16_t port, const std::string& admin_token, int tenants,
                                         int per_tenant, int throughput_mps,
                                         const std::string& graph_url, const std::string& tag,
                                         uint64_t first_pnid) {
  std::vector<channel_ref> out;
  for (int t = 0; t < tenants; ++t) {
    auto slug = "bench-" + tag + "-" + std::to_string(t);
    // Unlimited plan and API rates far above the load: the bench measures sending, not the plan
    // limits (their checks still run on every request).
    auto tenant = admin_post(port, admin_token, "/v1/tenants",
                             {{"name", "Bench tenant " + slug},
                              {"slug", slug},
                              {"plan", "enterprise"},
                              {"limits", {{"api_rps", 1000000}, {"api_burst", 1000000}}}});
    auto id = tenant.at("id").get<std::string>();
    auto key = admin_post(port, admin_token, "/v1/tenants/" + id + "/api-keys", {{"name", "bench"}})
                   .at("key")
                   .get<std::string>();
    for (int c = 0; c < per_tenant; ++c) {
      auto n = first_pnid + static_cast<uint64_t>(out.size());
      nlohmann::json body{{"type", "whatsapp_cloud"},
                          {"phone_number_id", std::to_string(n)},
                          {"waba_id", std::to_string(n + 1000000)},
                          {"display_phone_number", "+1 555 " + std::to_string(n % 10000000)},
                          {"access_token", "EAAG" + crypto::random_hex(40)},
                          {"graph_base_url", graph_url},
                          {"throughput_mps", throughput_mps}};
      auto ch = admin_post(port, admin_token, "/v1/tenants/" + id + "/channels", body);
      out.push_back({key, ch.at("id").get<std::string>(), std::to_string(n)});
    }
  }
  return out;
}

/// POST /v1/messages for one template send; `to` is distinct per sequence number (and per
/// `prefix`), so Meta's per-recipient pair limit never applies.
std::string send_request(const channel_ref& ch, const std::string& to) {
  std::string body = R"({"channel_id":")" + ch.channel_id + R"(","to":")" + to +
                     R"(","type":"template","template":{"name":"hello_world",)"
                     R"("language":{"code":"en_US"}}})";
  return "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + ch.api_key +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

std::string recipient(uint64_t prefix, uint64_t seq) {
  return std::to_string(prefix * 10000000000ULL + seq); // 12 digits: a valid wa_id
}

// ---- pg_stat_statements ---------------------------------------------------------------------

/// Resets pg_stat_statements if the cluster preloads it (optional: shows where PostgreSQL's time
/// goes); false when unavailable.
bool reset_statements(bench_db& db) {
  try {
    db.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    db.query("SELECT pg_stat_statements_reset()");
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

/// The statements of `dbname` by total execution time. Planning time shows only when the
/// cluster sets pg_stat_statements.track_planning (the batch statements are not prepared, so
/// every batch plans them again).
void print_statements(bench_db& db, const std::string& dbname) {
  auto rows = db.query("SELECT s.calls, s.total_exec_time, s.mean_exec_time,"
                       " s.total_plan_time / greatest(s.calls, 1), s.rows,"
                       " regexp_replace(left(s.query, 400), '\\s+', ' ', 'g')"
                       " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                       " WHERE d.datname = '" +
                       dbname + "' ORDER BY s.total_exec_time DESC LIMIT 10");
  std::printf("\nPostgreSQL statements of the throughput run by total execution time "
              "(pg_stat_statements):\n%9s %9s %9s %9s %9s  %s\n",
              "calls", "exec s", "exec ms", "plan ms", "rows", "statement");
  for (const auto& r : rows) {
    std::string q = r[5].c_str();
    if (q.size() > 100)
      q = q.substr(0, 100) + "...";
    std::printf("%9lld %9.2f %9.3f %9.3f %9lld  %s\n", r[0].as<long long>(),
                r[1].as<double>() / 1000.0, r[2].as<double>(), r[3].as<double>(),
                r[4].as<long long>(), q.c_str());
  }
}

// ---- the throughput run ---------------------------------------------------------------------

struct bench_env {
  options opt;
  bench_db* db = nullptr;
  std::string dbname;
  pid_t parley_pid = -1;
  uint16_t port = 0;
  fake_graph* graph = nullptr;
  const std::vector<channel_ref>* channels = nullptr;
  uint64_t next_seq = 0;
};

struct throughput_report {
  std::string name;
  load_result load;
  double accepted_per_s = 0;
  double p50_ms = NAN, p99_ms = NAN, max_ms = NAN;
  double sent_per_s_during_load = 0; ///< arrivals at the fake while the load ran / its length
  double msgs_per_s_end_to_end = 0;  ///< accepted / (last arrival - first send)
  double drain_s = 0;                ///< end of load -> outbox empty and everything received
  bool drained = false;
  uint64_t received = 0;     ///< sends the fake got in this run (duplicates included)
  uint64_t lost = 0;         ///< accepted, never received
  uint64_t duplicates = 0;   ///< extra receptions of a recipient of this run
  uint64_t unacked_sent = 0; ///< not answered 202 (timeout, transport error) yet sent
  int64_t db_sent = 0;       ///< messages that became `sent` in this run
  int64_t db_not_sent = 0;   ///< outbound messages of this run still pending or failed
  bool pass = false;
  std::string verdict;
  cpu_share cpu;
  double rss_mb = NAN, peak_rss_mb = NAN;
  double token_waits = 0, retries = 0, in_doubt = 0, graph_p99_ms = NAN;
  double batches_per_s = 0, rows_per_batch = 0, commit_mean_ms = 0;
  double load_avg = 0;
};

int64_t outbound_sent(bench_db& db) {
  return db.scalar(
      "SELECT count(*) FROM messages WHERE direction = 'outbound' AND status = 'sent'");
}

throughput_report run_throughput(bench_env& env, const std::string& name, int connections,
                                 double duration_s) {
  throughput_report r;
  r.name = name;
  const auto& channels = *env.channels;
  auto first = env.next_seq;
  std::vector<uint8_t> accepted; // by seq - first: answered 202
  std::optional<clk::time_point> first_send;

  load_options lo;
  lo.port = env.port;
  lo.connections = connections;
  lo.duration = std::chrono::milliseconds(static_cast<int64_t>(duration_s * 1000));
  lo.first_seq = first;
  lo.success_status = 202;
  lo.make_request = [&](uint64_t seq) {
    if (!first_send)
      first_send = clk::now();
    return send_request(channels[seq % channels.size()], recipient(15, seq));
  };
  lo.on_answer = [&](uint64_t seq, unsigned status) {
    auto k = seq - first;
    if (accepted.size() <= k)
      accepted.resize(k + 1 + (k >> 1), 0);
    accepted[k] = status == 202;
  };

  std::printf("  %s: closed loop (as fast as accepted), %d connections, %.0f s ...\n", name.c_str(),
              connections, duration_s);
  std::fflush(stdout);
  auto sent0 = outbound_sent(*env.db);
  auto received0 = env.graph->received();
  auto m0 = scrape_metrics(env.port);
  auto c0 = sample_cpu(*env.db, env.dbname, env.parley_pid);
  auto t_start = clk::now();
  r.load = run_load(lo);
  auto t_load_end = clk::now();
  env.next_seq = r.load.next_seq;
  r.accepted_per_s = r.load.elapsed_s > 0 ? static_cast<double>(r.load.ok) / r.load.elapsed_s : 0;
  r.p50_ms = percentile_ms(r.load.latency_us, 0.50);
  r.p99_ms = percentile_ms(r.load.latency_us, 0.99);
  r.max_ms = percentile_ms(r.load.latency_us, 1.0);
  auto t0 = first_send.value_or(t_start);
  r.sent_per_s_during_load = static_cast<double>(env.graph->arrivals_between(t0, t_load_end)) /
                             std::max(std::chrono::duration<double>(t_load_end - t0).count(), 1e-3);

  // Drained: nothing left in the outbox and at least as many receptions as acceptances.
  for (;;) {
    auto waited = std::chrono::duration<double>(clk::now() - t_load_end).count();
    bool got_all = env.graph->received() - received0 >= r.load.ok;
    if (got_all && env.db->scalar("SELECT count(*) FROM outbox") == 0) {
      r.drained = true;
      r.drain_s = waited;
      break;
    }
    if (waited > env.opt.drain_wait_s) {
      r.drain_s = waited;
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  auto t_end = clk::now();
  auto c1 = sample_cpu(*env.db, env.dbname, env.parley_pid);
  auto m1 = scrape_metrics(env.port);
  r.load_avg = load_average();
  r.cpu = cpu_between(c0, c1, std::chrono::duration<double>(t_end - t_start).count());
  r.rss_mb = process_memory_mb(env.parley_pid, "VmRSS");
  r.peak_rss_mb = process_memory_mb(env.parley_pid, "VmHWM");
  auto last = env.graph->last_arrival();
  if (last > t0)
    r.msgs_per_s_end_to_end =
        static_cast<double>(r.load.ok) / std::chrono::duration<double>(last - t0).count();

  r.token_waits = delta(m0, m1, "parley_outbound_token_waits_total");
  r.retries = delta(m0, m1, "parley_outbound_retries_total");
  r.in_doubt = delta(m0, m1, "parley_outbound_in_doubt_total");
  r.graph_p99_ms = 1000 * histogram_quantile(m0, m1, "parley_graph_request_seconds", 0.99);
  auto batches = delta(m0, m1, "parley_db_batch_rows_count");
  auto seconds = std::chrono::duration<double>(t_end - t_start).count();
  r.batches_per_s = batches / seconds;
  if (batches > 0)
    r.rows_per_batch = delta(m0, m1, "parley_db_batch_rows_sum") / batches;
  auto commits = delta(m0, m1, "parley_db_commit_seconds_count");
  if (commits > 0)
    r.commit_mean_ms = 1000 * delta(m0, m1, "parley_db_commit_seconds_sum") / commits;

  // Every 202 must reach the fake; a request cut off (timeout, transport error) may still have
  // been stored and sent, which is allowed and shown.
  r.received = env.graph->received() - received0;
  auto seen = env.graph->recipients();
  for (uint64_t seq = first; seq < r.load.next_seq; ++seq) {
    auto k = seq - first;
    bool ok = k < accepted.size() && accepted[k];
    auto it = seen.find(recipient(15, seq));
    uint32_t n = it == seen.end() ? 0 : it->second;
    if (ok && n == 0)
      ++r.lost;
    if (!ok && n > 0)
      ++r.unacked_sent;
    if (n > 1)
      r.duplicates += n - 1;
  }
  r.db_sent = outbound_sent(*env.db) - sent0;
  r.db_not_sent = env.db->scalar(
      "SELECT count(*) FROM messages WHERE direction = 'outbound' AND status <> 'sent'");
  auto expected_sent = static_cast<int64_t>(r.load.ok + r.unacked_sent);
  if (!r.drained)
    r.verdict = "FAIL (not drained)";
  else if (r.lost > 0)
    r.verdict = "FAIL (" + std::to_string(r.lost) + " lost)";
  else if (r.db_sent != expected_sent || r.db_not_sent != 0)
    r.verdict = "FAIL (db: " + std::to_string(r.db_sent) + " sent, " +
                std::to_string(r.db_not_sent) + " not sent)";
  else {
    r.pass = true;
    r.verdict =
        r.unacked_sent > 0 ? "PASS (+" + std::to_string(r.unacked_sent) + " unacked sent)" : "PASS";
  }
  return r;
}

std::string others(const load_result& l) {
  std::string s;
  for (const auto& [status, n] : l.other_status)
    s += (s.empty() ? "" : " ") + std::to_string(status) + "x" + std::to_string(n);
  return s.empty() ? "0" : s;
}

void print_throughput(const throughput_report& r) {
  auto row = [](const std::string& label, const std::string& value, const std::string& target) {
    std::printf("%-50s %-26s %s\n", label.c_str(), value.c_str(), target.c_str());
  };
  std::printf("\n%-50s %-26s target\n", "", r.name.c_str());
  row("sends posted (POST /v1/messages)", thousands(static_cast<double>(r.load.sent)), "");
  row("accepted (202) sends/s", thousands(r.accepted_per_s), "");
  row("accept latency p50 / p99 / max (ms)",
      fmt("%.2f", r.p50_ms) + " / " + fmt("%.2f", r.p99_ms) + " / " + fmt("%.0f", r.max_ms), "");
  row("non-202 answers (status x count)", others(r.load), "0");
  row("transport errors", std::to_string(r.load.transport_errors), "0");
  row("messages/s at the fake while posting", thousands(r.sent_per_s_during_load), "");
  row("messages/s end to end (first POST->last at fake)", thousands(r.msgs_per_s_end_to_end),
      ">= 5,000");
  row("drain after load (s)",
      r.drained ? fmt("%.1f", r.drain_s) : "NOT drained (" + fmt("%.0f", r.drain_s) + ")", "");
  row("accepted / received by the fake / lost",
      std::to_string(r.load.ok) + " / " + std::to_string(r.received) + " / " +
          std::to_string(r.lost),
      "lost 0");
  row("duplicates at the fake", std::to_string(r.duplicates), "0");
  row("db: became sent / outbound not sent",
      std::to_string(r.db_sent) + " / " + std::to_string(r.db_not_sent), "");
  row("check: every accepted message sent once", r.verdict, "");
  row("token waits / retries / in doubt",
      thousands(r.token_waits) + " / " + thousands(r.retries) + " / " + thousands(r.in_doubt), "");
  row("graph request p99 (ms, histogram)", fmt("<=%.1f", r.graph_p99_ms), "");
  row("db batches/s, rows per batch, commit mean ms",
      thousands(r.batches_per_s) + ", " + fmt("%.1f", r.rows_per_batch) + ", " +
          fmt("%.2f", r.commit_mean_ms),
      "");
  row("parley RSS now / peak (VmHWM, MB)",
      fmt("%.0f", r.rss_mb) + " / " + fmt("%.0f", r.peak_rss_mb), "< 200");
  row("CPU cores (load + drain): parley / postgres",
      fmt("%.2f", r.cpu.parley) + " / " + fmt("%.2f", r.cpu.postgres), "");
  {
    // Per unit of work: comparable across runs even when the host steals time.
    auto per = [&](double cores) {
      return r.msgs_per_s_end_to_end > 0 ? cores / r.msgs_per_s_end_to_end * 1e6 : 0.0;
    };
    row("CPU us per message: parley / postgres",
        fmt("%.0f", per(r.cpu.parley)) + " / " + fmt("%.0f", per(r.cpu.postgres)), "");
  }
  row("CPU cores: bench (load gen + fake) / other / steal / machine",
      fmt("%.2f", r.cpu.loadgen) + " / " + fmt("%.2f", r.cpu.other) + " / " +
          fmt("%.2f", r.cpu.steal) + " / " + fmt("%.2f", r.cpu.machine),
      "");
  row("load average (1 min) after the run", fmt("%.2f", r.load_avg), "");
}

// ---- the rate-limit run ---------------------------------------------------------------------

struct rate_report {
  uint64_t accepted = 0, received = 0;
  double enqueue_s = 0;
  uint64_t in_window = 0;            ///< arrivals in [first, first + window)
  double window_rate = 0;            ///< arrivals in [first, first + window) / window
  double max_1s = 0;                 ///< max arrivals in any sliding 1-second window
  double max_1s_after_first = 0;     ///< the same, windows starting 1 s after the first arrival
  uint64_t min_bin = 0, max_bin = 0; ///< fewest / most arrivals in the window's whole seconds
  bool within = false, never_above = false;
};

/// The most arrivals in any [t, t + 1 s) with t at an arrival at or after `from`.
double max_per_second(const std::vector<clk::time_point>& t, clk::time_point from) {
  size_t best = 0;
  for (size_t i = 0, j = 0; i < t.size(); ++i) {
    if (t[i] < from)
      continue;
    j = std::max(j, i);
    while (j < t.size() && t[j] < t[i] + 1s)
      ++j;
    best = std::max(best, j - i);
  }
  return static_cast<double>(best);
}

rate_report run_rate(bench_env& env, const channel_ref& ch) {
  rate_report r;
  auto total = static_cast<uint64_t>(env.opt.rate_mps) * (env.opt.rate_seconds + 5);
  std::printf("  rate limit: %llu sends on one %d mps channel as fast as accepted ...\n",
              static_cast<unsigned long long>(total), env.opt.rate_mps);
  std::fflush(stdout);
  load_options lo;
  lo.port = env.port;
  lo.connections = 16;
  lo.duration = 120s;
  lo.max_requests = total;
  lo.success_status = 202;
  lo.make_request = [&ch](uint64_t seq) { return send_request(ch, recipient(16, seq)); };
  auto load = run_load(lo);
  r.accepted = load.ok;
  r.enqueue_s = load.elapsed_s;

  auto expected_s = static_cast<double>(r.accepted) / env.opt.rate_mps;
  auto until = clk::now() + std::chrono::duration_cast<clk::duration>(
                                std::chrono::duration<double>(expected_s + env.opt.drain_wait_s));
  std::vector<clk::time_point> arrivals;
  while (clk::now() < until) {
    arrivals = env.graph->arrivals_of(ch.phone_number_id);
    if (arrivals.size() >= r.accepted)
      break;
    std::this_thread::sleep_for(200ms);
  }
  r.received = arrivals.size();
  if (arrivals.empty())
    return r;
  std::sort(arrivals.begin(), arrivals.end());
  auto window = std::chrono::seconds(env.opt.rate_seconds);
  auto in_window = std::count_if(arrivals.begin(), arrivals.end(),
                                 [&](auto t) { return t < arrivals.front() + window; });
  r.in_window = static_cast<uint64_t>(in_window);
  r.window_rate = static_cast<double>(in_window) / env.opt.rate_seconds;
  r.max_1s = max_per_second(arrivals, arrivals.front());
  r.max_1s_after_first = max_per_second(arrivals, arrivals.front() + 1s);
  std::vector<uint64_t> bins(static_cast<size_t>(env.opt.rate_seconds), 0);
  for (auto t : arrivals)
    if (auto k = static_cast<size_t>((t - arrivals.front()) / 1s); k < bins.size())
      ++bins[k];
  r.min_bin = *std::min_element(bins.begin(), bins.end());
  r.max_bin = *std::max_element(bins.begin(), bins.end());
  double target = env.opt.rate_mps;
  r.within = std::abs(r.window_rate - target) <= rate_tolerance * target;
  // The window opens at an arrival, so a perfect pacer puts rate * window + 1 arrivals in it
  // (fence posts: 241 at 12.5 ms spacing in 3 s, the last 0.1 ms early from network jitter).
  // "Never above" is judged on the intervals: (arrivals - 1) / window.
  r.never_above = static_cast<double>(in_window - 1) / env.opt.rate_seconds <= target;
  return r;
}

void print_rate(const rate_report& r, const options& o) {
  auto row = [](const std::string& label, const std::string& value, const std::string& target) {
    std::printf("%-50s %-26s %s\n", label.c_str(), value.c_str(), target.c_str());
  };
  std::printf("\n%-50s %-26s target\n", "", "rate limit (1 channel)");
  row("accepted / received by the fake",
      std::to_string(r.accepted) + " / " + std::to_string(r.received), "equal");
  row("enqueue time (s)", fmt("%.2f", r.enqueue_s), "");
  row("messages/s over " + std::to_string(o.rate_seconds) + " s after the first arrival",
      fmt("%.2f", r.window_rate) + " (" + std::to_string(r.in_window) + " msgs)",
      fmt("%.0f", o.rate_mps * (1 - rate_tolerance)) + " .. " + std::to_string(o.rate_mps));
  row("max messages in any sliding 1 s window", fmt("%.0f", r.max_1s),
      "<= " + std::to_string(o.rate_mps) + " + burst");
  row("  the same from 1 s after the first arrival", fmt("%.0f", r.max_1s_after_first), "");
  row("fewest / most in one of the window's whole seconds",
      std::to_string(r.min_bin) + " / " + std::to_string(r.max_bin), "");
  row("check: within +-5% / never above on average",
      std::string(r.within ? "PASS" : "FAIL") + " / " + (r.never_above ? "PASS" : "FAIL"), "");
}

// ---- main -----------------------------------------------------------------------------------

int run(const options& opt) {
  auto admin_url = admin_database_url();
  auto bin = locate_parley(opt.parley_bin);
  std::printf("machine: %u cores, load average %.2f at start; parley: %s\n",
              std::thread::hardware_concurrency(), load_average(), bin.c_str());

  fake_graph graph{std::chrono::milliseconds(opt.graph_latency_ms)};
  scratch_database scratch{admin_url, "bench_outbound_", opt.keep_db};
  auto admin_token = crypto::random_hex(24);
  std::map<std::string, std::string> env{
      {"PARLEY_DB_URL", scratch.app_url()},
      {"PARLEY_DB_MIGRATE_URL", scratch.url()},
      {"PARLEY_HTTP_ADDRESS", "127.0.0.1"},
      {"PARLEY_HTTP_PORT", "0"},
      {"PARLEY_ADMIN_TOKEN", admin_token},
      {"PARLEY_MASTER_KEY", crypto::random_hex(32)},
      {"PARLEY_WHATSAPP_APP_SECRET", crypto::random_hex(16)},
  };
  for (const auto& [k, v] : opt.server_env)
    env[k] = v;
  auto log_path = (std::filesystem::temp_directory_path() / (scratch.name() + ".log")).string();
  server_process server{bin, env, log_path};
  auto port = server.wait_listening(30s);
  std::printf("parley serve: pid %d, port %u, database %s, log %s; fake Graph API %s%s\n",
              server.pid(), port, scratch.name().c_str(), log_path.c_str(),
              graph.base_url().c_str(),
              opt.graph_latency_ms > 0
                  ? (" answering after " + std::to_string(opt.graph_latency_ms) + " ms").c_str()
                  : "");

  auto tag = crypto::random_hex(3);
  auto t_setup = clk::now();
  auto channels = create_channels(port, admin_token, opt.tenants, opt.channels_per_tenant,
                                  opt.throughput_mps, graph.base_url(), tag, 106540352000000ULL);
  auto rate_channel = create_channels(port, admin_token, 1, 1, opt.rate_mps, graph.base_url(),
                                      tag + "-rate", 107000000000000ULL)
                          .front();
  std::printf("set-up: %d tenants x %d channels (%d mps each) + 1 rate-limit channel in %.1f s\n",
              opt.tenants, opt.channels_per_tenant, opt.throughput_mps,
              std::chrono::duration<double>(clk::now() - t_setup).count());

  bench_db db{scratch.url()};
  bench_env benv{opt, &db, scratch.name(), server.pid(), port, &graph, &channels, 0};

  // Warm-up: tenant activations, channel actors, keep-alive connections to the fake; not reported.
  auto warm = run_throughput(benv, "warm-up", 16, 2);
  if (!warm.pass)
    std::printf("  warm-up: %s\n", warm.verdict.c_str());
  bool statements = reset_statements(db);
  auto tp = run_throughput(benv, "throughput (" + std::to_string(channels.size()) + " channels)",
                           opt.connections, opt.duration_s);
  print_throughput(tp);
  if (statements)
    print_statements(db, scratch.name());
  else
    std::printf("\n(pg_stat_statements is not preloaded in this cluster: no statement times)\n");

  std::printf("\n");
  auto rate = run_rate(benv, rate_channel);
  print_rate(rate, opt);
  double peak = process_memory_mb(server.pid(), "VmHWM");

  bool pass = tp.pass && rate.received >= rate.accepted;
  std::printf(
      "\ntargets: messages/s %s (%s vs >= %s), peak RSS %s (%s MB vs < %.0f MB), rate limit %s "
      "(%s/s vs %d/s +-5%%, never above)\n",
      tp.msgs_per_s_end_to_end >= target_msgs_per_s ? "met" : "MISSED",
      thousands(tp.msgs_per_s_end_to_end).c_str(), thousands(target_msgs_per_s).c_str(),
      peak < target_rss_mb ? "met" : "MISSED", fmt("%.0f", peak).c_str(), target_rss_mb,
      rate.within && rate.never_above ? "met" : "MISSED", fmt("%.2f", rate.window_rate).c_str(),
      opt.rate_mps);

  int status = server.stop(30s);
  std::printf("parley stopped with SIGTERM: exit status %d\n", status);
  if (status != 0 || !pass)
    std::printf("%s(log kept)\n", server.log_tail().c_str());
  else
    std::filesystem::remove(log_path);
  std::printf("%s: %s\n", bench_name,
              pass ? "PASS (every accepted message reached the Graph API and is sent in the db)"
                   : "FAIL (accepted messages lost, or the database disagrees)");
  return pass ? 0 : 1;
}

} // namespace

} // namespace parley::bench

int main(int argc, char** argv) {
  auto opt = parley::bench::parse_args(argc, argv);
  try {
    if (opt.filter && !std::regex_search(parley::bench::bench_name, std::regex{*opt.filter})) {
      std::printf("%s: skipped (--benchmark_filter=%s)\n", parley::bench::bench_name,
                  opt.filter->c_str());
      return 0;
    }
    return parley::bench::run(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_outbound: error: %s\n", e.what());
    return 1;
  }
}
