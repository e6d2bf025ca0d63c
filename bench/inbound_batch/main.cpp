// The inbound group-commit batch alone: what one writer transaction of webhook messages costs
// PostgreSQL and the writer thread, without HTTP, actors or the load generator competing for the
// two cores. It calls the real batch handlers (actors/inbound_store) through the real committer
// (persistence::run_batch) on a scratch database, batch after batch on one connection, with
// rows made from the ingest bench's ~1.2 KB webhooks parsed by the real parser.
//
// Two cases: new contacts (each row a contact never seen: contact, conversation and message
// inserted, the raw event marked processed) and known contacts (the conversation actor knows the
// contact: message inserted, the conversation's counters updated, the raw event marked). The raw
// events themselves are committed by the journal before this (persistence/journal.hpp), so they
// are inserted before the timed part here. Prints per batch: wall time
// (BEGIN..COMMIT as the writer sees it), PostgreSQL CPU and this process's CPU, and the same per
// row. This is the figure the ingest bench's writer cycle is made of (docs/performance.md).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <pqxx/pqxx>

#include "actors/inbound_store.hpp"
#include "bench/common/harness.hpp"
#include "bench/webhook_ingest/payload.hpp"
#include "domain/webhook.hpp"
#include "persistence/batch.hpp"
#include "persistence/migrations.hpp"

using namespace parley;

namespace {

struct channel_ref {
  std::string id, tenant_id, phone_number_id;
};

struct figures {
  std::vector<double> wall_ms;
  double pg_cpu_s = 0, self_cpu_s = 0;
  size_t rows = 0, failed = 0;
};

/// The row a conversation actor sends the writer for `msg`, the only part of raw event `raw_id`.
nlohmann::json message_row(const channel_ref& ch, domain::inbound_message msg, bool known,
                           int64_t raw_id) {
  auto row = inbound_store::message_row(ch.tenant_id, ch.id, msg.wa_id, msg, known);
  row["raw_event_id"] = raw_id;
  row["completes_event"] = true;
  return row;
}

/// `n` unprocessed raw events of the webhooks' size, committed as the journal would; their ids.
std::vector<int64_t> journal_events(bench::bench_db& probe, size_t n) {
  std::vector<int64_t> ids;
  ids.reserve(n);
  for (const auto& row : probe.query(
           "WITH e AS (INSERT INTO raw_webhook_events (body) SELECT convert_to(repeat('x', 1200) "
           "|| g, 'UTF8') FROM generate_series(1, " +
           std::to_string(n) +
           ") g RETURNING id), p AS (INSERT INTO raw_webhook_events_pending (id) SELECT id FROM e) "
           "SELECT id FROM e"))
    ids.push_back(row[0].as<int64_t>());
  return ids;
}

double cpu_seconds(const bench::cpu_sample& s) {
  double pg = 0;
  for (const auto& [pid, secs] : s.postgres)
    pg += secs;
  return pg;
}

/// Runs batches of `rows_per_batch` made of webhooks 0, 1, 2, ... of `factory` for `seconds`,
/// or until webhook `max_seq`; returns the figures and sets `last_seq` to the next webhook.
figures run_case(const std::string& url, const std::string& dbname, bench::bench_db& probe,
                 const std::vector<channel_ref>& channels, const bench::webhook_factory& factory,
                 bool known, size_t rows_per_batch, double seconds, uint64_t max_seq,
                 uint64_t& last_seq) {
  persistence::db_session session;
  session.url = url;
  session.opts.application_name = "parley-writer";
  session.opts.index_plans_only = true;
  auto handlers = inbound_store::batch_handlers();
  figures f;
  uint64_t seq = 0;
  // Enough for any run on this machine (a batch takes milliseconds); the loop ends early if not.
  auto raw_ids = journal_events(probe, std::min<size_t>(rows_per_batch * 1500, 300000));
  size_t next_raw = 0;
  auto make_batch = [&] {
    std::vector<persistence::write_op> ops;
    for (size_t i = 0; i < rows_per_batch; ++i, ++seq) {
      auto body = factory.body(seq);
      auto parsed = domain::parse_webhook(body);
      auto& batch = std::get<domain::webhook_batch>(parsed);
      auto& msg = batch.messages.front();
      const auto& ch = channels[std::stoul(msg.phone_number_id) % channels.size()];
      ops.push_back({inbound_store::message_kind,
                     message_row(ch, std::move(msg), known, raw_ids.at(next_raw++))});
    }
    return ops;
  };
  // Warm-up: the connection, prepared statements, generic plans.
  for (int i = 0; i < 8; ++i)
    persistence::run_batch(session, make_batch(), handlers, {});
  auto begin_cpu = bench::sample_cpu(probe, dbname, getpid());
  auto started = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() <
             seconds &&
         seq + rows_per_batch <= max_seq && next_raw + rows_per_batch <= raw_ids.size()) {
    auto ops = make_batch(); // outside the timing: the actors build rows, not the writer
    auto t0 = std::chrono::steady_clock::now();
    auto out = persistence::run_batch(session, std::move(ops), handlers, {});
    f.wall_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    f.rows += out.rows.size();
    for (const auto& r : out.rows)
      f.failed += r.ok ? 0 : 1;
  }
  auto end_cpu = bench::sample_cpu(probe, dbname, getpid());
  f.pg_cpu_s = cpu_seconds(end_cpu) - cpu_seconds(begin_cpu);
  // This process's CPU includes building the rows (JSON, parsing), reported apart below.
  f.self_cpu_s = end_cpu.self - begin_cpu.self;
  last_seq = seq;
  return f;
}

void print(const char* name, figures& f, size_t rows_per_batch) {
  auto n = f.wall_ms.size();
  if (n == 0) {
    std::printf("%-16s no batch ran\n", name);
    return;
  }
  std::sort(f.wall_ms.begin(), f.wall_ms.end());
  double sum = 0;
  for (auto v : f.wall_ms)
    sum += v;
  double mean = sum / static_cast<double>(n);
  std::printf("%-16s %8zu %6zu %8.2f %8.2f %8.2f %10.1f %10.1f %10.1f %7zu\n", name, n,
              rows_per_batch, mean, f.wall_ms[n / 2], f.wall_ms[n * 99 / 100],
              1000.0 * mean / static_cast<double>(rows_per_batch),
              1e6 * f.pg_cpu_s / static_cast<double>(f.rows),
              1e6 * f.self_cpu_s / static_cast<double>(f.rows), f.failed);
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"The inbound group-commit batch alone (real handlers, real PostgreSQL)"};
  double seconds = 10;
  size_t rows = 400;
  bool keep = false;
  app.add_option("--seconds", seconds, "seconds per case")->check(CLI::PositiveNumber);
  app.add_option("--rows", rows,
                 "rows per batch (the inbound writer holds 300-1,000 under the ingest bench)")
      ->check(CLI::Range(1, 5000));
  app.add_flag("--keep-db", keep, "keep the scratch database afterwards");
  std::string filter;
  app.add_option("--benchmark_filter", filter, "run only when the bench name matches (make bench)");
  CLI11_PARSE(app, argc, argv);
  if (!filter.empty() && std::string{"inbound_batch"}.find(filter) == std::string::npos)
    return 0;
  try {
    bench::scratch_database db{bench::admin_database_url(), "bench_batch_", keep};
    persistence::migrate(db.url());
    bench::bench_db probe{db.url()};
    // 100 tenants with one channel each, phone_number_id = its index.
    probe.query("SELECT set_config('parley.scope', 'platform', false)");
    auto made = probe.query(
        "WITH t AS (INSERT INTO tenants (name, slug) SELECT 'Bench ' || g, 'bench-' || g "
        "FROM generate_series(0, 99) g RETURNING id, slug) "
        "INSERT INTO channels (tenant_id, phone_number_id, waba_id, display_phone_number, "
        "access_token_enc) SELECT id, substr(slug, 7), 'waba', '+1555', 'x' FROM t "
        "RETURNING id::text, tenant_id::text, phone_number_id");
    std::vector<channel_ref> channels(made.size());
    for (const auto& row : made)
      channels[std::stoul(row[2].c_str())] = {row[0].c_str(), row[1].c_str(), row[2].c_str()};
    bench::webhook_mix mix;
    for (const auto& ch : channels)
      mix.phone_number_ids.push_back(ch.phone_number_id);
    mix.contacts_per_channel = 1000000; // new contacts: a wa_id is (nearly) never drawn twice
    mix.app_secret = "bench";
    mix.run_tag = db.name();
    bench::webhook_factory fresh{mix};
    std::printf("inbound batch: %zu rows per batch, %.0f s per case, database %s\n", rows, seconds,
                db.name().c_str());
    std::printf("%-16s %8s %6s %8s %8s %8s %10s %10s %10s %7s\n", "case", "batches", "rows",
                "mean ms", "p50 ms", "p99 ms", "wall us/row", "PG cpu us/row", "bench us/row",
                "failed");
    uint64_t next = 0;
    auto f = run_case(db.app_url(), db.name(), probe, channels, fresh, false, rows, seconds,
                      UINT64_MAX, next);
    print("new contacts", f, rows);
    // The same contacts again (webhooks 0, 1, 2, ... draw the same wa_ids), as known ones, with
    // new wamids (another run tag).
    mix.run_tag = db.name() + "-again";
    bench::webhook_factory again{mix};
    uint64_t unused = 0;
    auto k = run_case(db.app_url(), db.name(), probe, channels, again, true, rows, seconds, next,
                      unused);
    print("known contacts", k, rows);
    std::printf("(wall: run_batch as the writer sees it, BEGIN..COMMIT; PG cpu: the database's "
                "processes; bench: this process, which also builds and parses the rows)\n");
    return f.failed + k.failed == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "inbound_batch: %s\n", e.what());
    return 2;
  }
}
