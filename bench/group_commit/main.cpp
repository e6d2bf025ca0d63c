// Drives the real group-commit writer with many concurrent requesters at batch sizes 1, 100 and
// 1000 and prints rows/s, commit latency and per-op acknowledgement latency.
//
// Commit latency is measured per batch from the moment its batch_fn starts (just after BEGIN) to
// the first acknowledgement of that batch reaching a requester, so it covers the statement,
// COMMIT and delivery, with no histogram bucketing. Ack latency is per operation, from the
// request to the reply, and includes waiting in the writer's mailbox for a batch to form.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

#include <caf/all.hpp>
#include <pqxx/pqxx>

#include "persistence/connection.hpp"
#include "persistence/writer.hpp"

using namespace std::chrono_literals;
using parley::persistence::persist_atom;
using parley::persistence::write_op;

namespace {

using clock_type = std::chrono::steady_clock;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
      .count();
}

constexpr const char* create_table = "CREATE TABLE bench_rows (id bigserial PRIMARY KEY, k text "
                                     "NOT NULL UNIQUE, payload jsonb NOT NULL)";

constexpr const char* insert_rows =
    "INSERT INTO bench_rows (k, payload)"
    " SELECT r.k, r.payload FROM jsonb_to_recordset($1::jsonb) AS r(k text, payload jsonb)"
    " ON CONFLICT (k) DO NOTHING RETURNING k, id";

/// The kind of handler product code registers: one statement per batch, idempotent. Each
/// result also carries the batch's start time so requesters can measure commit latency.
std::vector<nlohmann::json> insert_batch(pqxx::work& tx, const std::vector<nlohmann::json>& rows) {
  auto t0 = now_ns();
  std::map<std::string, long long> ids;
  for (const auto& r : tx.exec_params(insert_rows, nlohmann::json(rows).dump()))
    ids[r[0].as<std::string>()] = r[1].as<long long>();
  std::vector<nlohmann::json> out;
  out.reserve(rows.size());
  for (const auto& row : rows) {
    auto it = ids.find(row["k"].get<std::string>());
    out.push_back({{"id", it == ids.end() ? -1 : it->second}, {"t0", t0}});
  }
  return out;
}

/// A payload about the size of a WhatsApp status webhook.
nlohmann::json payload() {
  return {{"object", "whatsapp_business_account"},
          {"entry",
           {{{"id", "102290129340398"},
             {"changes",
              {{{"field", "messages"},
                {"value",
                 {{"messaging_product", "whatsapp"},
                  {"statuses",
                   {{{"id", "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJCMTE4RTUA"},
                     {"status", "delivered"},
                     {"timestamp", "1700000000"},
                     {"recipient_id", "16505551234"}}}}}}}}}}}}};
}

struct results {
  std::vector<double> ack_us;
  std::vector<int64_t> batch_t0;   ///< per ack: the start of the batch that committed it
  std::vector<double> since_t0_us; ///< per ack: ack time - batch start
  uint64_t errors = 0;
};

struct requester_state {
  results r;
  int inflight = 0;
  uint64_t next = 0;
  static inline const char* name = "bench_requester";
};

using requester_actor = caf::stateful_actor<requester_state>;

void send_one(requester_actor* self, caf::actor writer, caf::actor collector, std::string prefix,
              clock_type::time_point deadline) {
  auto sent = now_ns();
  ++self->state.inflight;
  write_op op{"row", {{"k", prefix + std::to_string(self->state.next++)}, {"payload", payload()}}};
  auto done = [self, writer, collector, prefix, deadline] {
    --self->state.inflight;
    if (clock_type::now() < deadline) {
      send_one(self, writer, collector, prefix, deadline);
    } else if (self->state.inflight == 0) {
      auto& r = self->state.r;
      self->send(collector, std::move(r.ack_us), std::move(r.batch_t0), std::move(r.since_t0_us),
                 r.errors);
      self->quit();
    }
  };
  self->request(writer, 60s, persist_atom::value, std::move(op))
      .then(
          [self, sent, done](const nlohmann::json& j) {
            auto now = now_ns();
            auto& r = self->state.r;
            r.ack_us.push_back(static_cast<double>(now - sent) / 1e3);
            auto t0 = j["t0"].get<int64_t>();
            r.batch_t0.push_back(t0);
            r.since_t0_us.push_back(static_cast<double>(now - t0) / 1e3);
            done();
          },
          [self, done](const caf::error&) {
            ++self->state.r.errors;
            done();
          });
}

caf::behavior requester(requester_actor* self, caf::actor writer, caf::actor collector,
                        std::string prefix, int window, clock_type::time_point deadline) {
  for (int i = 0; i < window; ++i)
    send_one(self, writer, collector, prefix, deadline);
  return {};
}

double percentile(std::vector<double> v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  auto idx = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

std::string ms(double us) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", us / 1000.0);
  return buf;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

} // namespace

int main() {
  const char* url_env = std::getenv("PARLEY_BENCH_PG_URL");
  if (!url_env)
    url_env = std::getenv("PARLEY_TEST_PG_URL");
  if (!url_env) {
    std::fprintf(stderr,
                 "bench_group_commit: set PARLEY_BENCH_PG_URL (or PARLEY_TEST_PG_URL) to a "
                 "PostgreSQL superuser URL, e.g. postgresql://postgres@127.0.0.1:55432/postgres\n");
    return 2;
  }
  const std::string admin = url_env;
  const int seconds = env_int("PARLEY_BENCH_SECONDS", 5);
  const int requesters = env_int("PARLEY_BENCH_REQUESTERS", 100);
  const int window = env_int("PARLEY_BENCH_WINDOW", 20); // requests in flight per requester

  const std::string dbname = "parley_bench_" + std::to_string(::getpid());
  try {
    pqxx::connection c{admin};
    pqxx::nontransaction tx{c};
    tx.exec("CREATE DATABASE " + tx.quote_name(dbname));
    std::printf(
        "PostgreSQL %s, synchronous_commit=%s; %d requesters x %d in flight, %d s per run\n",
        tx.exec1("SHOW server_version")[0].c_str(), tx.exec1("SHOW synchronous_commit")[0].c_str(),
        requesters, window, seconds);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_group_commit: %s\n",
                 parley::persistence::scrub(e.what(), admin).c_str());
    return 1;
  }
  const std::string url = parley::persistence::with_database(admin, dbname);
  int rc = 0;
  try {
    {
      pqxx::connection c{url};
      pqxx::nontransaction tx{c};
      tx.exec(create_table);
    }
    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", 2);
    caf::actor_system sys{cfg};

    std::printf("%-6s %10s %9s %9s %12s %12s %10s %10s %7s\n", "batch", "rows/s", "commits",
                "rows/txn", "commit p50", "commit p99", "ack p50", "ack p99", "errors");
    for (size_t batch : {size_t{1}, size_t{100}, size_t{1000}}) {
      {
        pqxx::connection c{url};
        pqxx::nontransaction tx{c};
        tx.exec("TRUNCATE bench_rows");
      }
      parley::metrics::registry m;
      parley::config::db_config dbc;
      dbc.url = url;
      parley::persistence::writer_options o;
      o.max_rows = batch;
      o.max_delay = 2ms;
      o.kinds = {{"row", insert_batch}};
      auto writer = parley::persistence::spawn_writer(sys, dbc, o, m);

      caf::scoped_actor collector{sys};
      auto started = clock_type::now();
      auto deadline = started + std::chrono::seconds(seconds);
      for (int i = 0; i < requesters; ++i)
        sys.spawn(requester, writer, caf::actor{collector},
                  "b" + std::to_string(batch) + "-r" + std::to_string(i) + "-", window, deadline);
      std::vector<double> ack_us;
      std::map<int64_t, double> first_ack_by_batch;
      uint64_t errors = 0;
      for (int i = 0; i < requesters; ++i)
        collector->receive(
            [&](std::vector<double>& acks, std::vector<int64_t>& t0s, std::vector<double>& since,
                uint64_t errs) {
              ack_us.insert(ack_us.end(), acks.begin(), acks.end());
              for (size_t k = 0; k < t0s.size(); ++k) {
                auto [it, fresh] = first_ack_by_batch.emplace(t0s[k], since[k]);
                if (!fresh)
                  it->second = std::min(it->second, since[k]);
              }
              errors += errs;
            },
            caf::after(std::chrono::seconds(seconds + 60)) >> [&] { ++errors; });
      auto elapsed = std::chrono::duration<double>(clock_type::now() - started).count();
      caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);

      std::vector<double> commit_us;
      for (auto& [t0, us] : first_ack_by_batch)
        commit_us.push_back(us);
      auto commits = first_ack_by_batch.size();
      std::printf("%-6zu %10.0f %9zu %9.1f %12s %12s %10s %10s %7llu\n", batch,
                  static_cast<double>(ack_us.size()) / elapsed, commits,
                  commits ? static_cast<double>(ack_us.size()) / static_cast<double>(commits) : 0.0,
                  (ms(percentile(commit_us, 0.50)) + " ms").c_str(),
                  (ms(percentile(commit_us, 0.99)) + " ms").c_str(),
                  (ms(percentile(ack_us, 0.50)) + " ms").c_str(),
                  (ms(percentile(ack_us, 0.99)) + " ms").c_str(),
                  static_cast<unsigned long long>(errors));
      std::fflush(stdout);
      if (errors != 0)
        rc = 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_group_commit: %s\n",
                 parley::persistence::scrub(e.what(), admin).c_str());
    rc = 1;
  }
  try {
    pqxx::connection c{admin};
    pqxx::nontransaction tx{c};
    tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(dbname) + " WITH (FORCE)");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_group_commit: could not drop %s: %s\n", dbname.c_str(),
                 parley::persistence::scrub(e.what(), admin).c_str());
  }
  return rc;
}
