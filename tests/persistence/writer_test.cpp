#include "persistence/writer.hpp"

#include <mutex>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

#include "actor_support.hpp"
#include "pg_support.hpp"
#include "tcp_proxy.hpp"

namespace parley::persistence {
namespace {

using namespace std::chrono_literals;
using test::ask;

// items.n must not be negative: the way tests make one row of a batch bad.
constexpr const char* create_items =
    "CREATE TABLE items (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE,"
    " n integer NOT NULL CHECK (n >= 0))";

// The whole batch in one statement: rows travel as one JSON array parameter.
constexpr const char* insert_items = "INSERT INTO items (k, n) SELECT r.k, r.n FROM "
                                     "jsonb_to_recordset($1::jsonb) AS r(k text, n int)"
                                     " ON CONFLICT (k) DO NOTHING RETURNING k, id";

/// Idempotent: a key already stored answers {"duplicate":true}.
std::vector<nlohmann::json> insert_item_batch(pqxx::work& tx,
                                              const std::vector<nlohmann::json>& rows) {
  std::map<std::string, long long> ids;
  for (const auto& r : tx.exec_params(insert_items, nlohmann::json(rows).dump()))
    ids[r[0].as<std::string>()] = r[1].as<long long>();
  std::vector<nlohmann::json> out;
  for (const auto& row : rows) {
    auto it = ids.find(row.at("k").get<std::string>());
    out.push_back(it == ids.end() ? nlohmann::json{{"duplicate", true}}
                                  : nlohmann::json{{"id", it->second}});
  }
  return out;
}

/// Not idempotent on purpose: a duplicate key is a unique violation.
std::vector<nlohmann::json> strict_item_batch(pqxx::work& tx,
                                              const std::vector<nlohmann::json>& rows) {
  std::vector<nlohmann::json> out;
  for (const auto& row : rows)
    out.push_back(tx.exec_params1("INSERT INTO items (k, n) VALUES ($1, $2) RETURNING id",
                                  row.at("k").get<std::string>(), row.at("n").get<int>())[0]
                      .as<long long>());
  return out;
}

/// Validates in C++ before touching the database.
std::vector<nlohmann::json> picky_batch(pqxx::work& tx, const std::vector<nlohmann::json>& rows) {
  for (const auto& row : rows)
    if (row.value("reject", false))
      throw app_error(errc::unprocessable, "row " + row.at("k").get<std::string>() + " rejected");
  return insert_item_batch(tx, rows);
}

write_op item(std::string k, int n = 1, std::string kind = "item") {
  return write_op{std::move(kind), {{"k", std::move(k)}, {"n", n}}};
}

class WriterTest : public test::pg_test {
protected:
  void SetUp() override {
    test::pg_test::SetUp();
    if (HasFatalFailure())
      return;
    test::sql_exec(db_->url(), create_items);
  }

  writer_options options(std::chrono::milliseconds delay = 2ms) {
    writer_options o;
    o.max_delay = delay;
    o.max_backoff = 400ms;
    o.kinds = {{"item", insert_item_batch}, {"strict", strict_item_batch}, {"picky", picky_batch}};
    return o;
  }

  caf::actor writer(writer_options o, config::db_config cfg) {
    return stop_later(spawn_writer(*sys_, cfg, std::move(o), metrics_));
  }
  caf::actor writer(writer_options o) { return writer(std::move(o), db_cfg()); }

  uint64_t batches() {
    return metrics_.get_histogram("parley_db_batch_rows", "", {}, metrics::size_buckets())
        .read()
        .count;
  }
  double commit_errors() {
    return metrics_.get_counter("parley_db_commit_errors_total", "").value();
  }
  int item_count() { return std::stoi(test::sql_value(db_->url(), "SELECT count(*) FROM items")); }
};

// ---- concurrent callers --------------------------------------------------------------------

struct client_state {
  int answered = 0;
  int ok = 0;
  std::map<std::string, std::string> errors; ///< key -> api code
};

/// Sends `n` ops at once (keys "<prefix><i>", row `bad` with a negative n) and reports
/// (ok count, errors) to `report_to` once every answer is in.
caf::behavior client(caf::stateful_actor<client_state>* self, caf::actor writer,
                     caf::actor report_to, std::string prefix, int n, int bad) {
  for (int i = 0; i < n; ++i) {
    auto k = prefix + std::to_string(i);
    self->request(writer, 30s, persist_atom::value, item(k, i == bad ? -1 : i))
        .then(
            [self, n, report_to](const nlohmann::json&) {
              ++self->state.ok;
              if (++self->state.answered == n)
                self->send(report_to, self->state.ok, nlohmann::json(self->state.errors));
            },
            [self, n, report_to, k](const caf::error& e) {
              self->state.errors[k] = std::string{api_code(code_of(e))};
              if (++self->state.answered == n)
                self->send(report_to, self->state.ok, nlohmann::json(self->state.errors));
            });
  }
  return {}; // alive until the last response has arrived
}

TEST_F(WriterTest, RowIsVisibleOnceAcknowledged) {
  auto w = writer(options());
  auto r = ask(*sys_, w, persist_atom::value, item("a", 5));
  ASSERT_TRUE(r.ok) << r;
  ASSERT_TRUE(r.value.contains("id")) << r;
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT n FROM items WHERE k = 'a'"), "5");
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT id FROM items WHERE k = 'a'"),
            std::to_string(r.value["id"].get<long long>()));
  auto again = ask(*sys_, w, persist_atom::value, item("a", 5));
  ASSERT_TRUE(again.ok) << again;
  EXPECT_EQ(again.value, (nlohmann::json{{"duplicate", true}}));
}

TEST_F(WriterTest, ManyCallersShareFewCommits) {
  auto w = writer(options());
  constexpr int clients = 50;
  constexpr int per_client = 100;
  caf::scoped_actor self{*sys_};
  for (int c = 0; c < clients; ++c)
    sys_->spawn(client, w, caf::actor{self}, "c" + std::to_string(c) + "-", per_client, -1);
  int ok = 0;
  for (int c = 0; c < clients; ++c)
    self->receive(
        [&](int n, const nlohmann::json& errors) {
          ok += n;
          EXPECT_TRUE(errors.empty()) << errors.dump();
        },
        caf::after(60s) >> [&] { FAIL() << "clients did not finish"; });
  EXPECT_EQ(ok, clients * per_client);
  EXPECT_EQ(item_count(), clients * per_client);
  // Group commit: far fewer transactions than operations.
  EXPECT_GE(batches(), 5u);
  EXPECT_LE(batches() * 10, static_cast<uint64_t>(clients * per_client)) << batches() << " batches";
  EXPECT_EQ(commit_errors(), 0);
}

TEST_F(WriterTest, BadRowFailsAloneAndTheRestCommit) {
  auto w = writer(options(300ms)); // long delay: all 200 rows land in one batch
  caf::scoped_actor self{*sys_};
  sys_->spawn(client, w, caf::actor{self}, "k", 200, 137);
  self->receive(
      [&](int ok, const nlohmann::json& errors) {
        EXPECT_EQ(ok, 199);
        EXPECT_EQ(errors, (nlohmann::json{{"k137", "invalid_request"}}));
      },
      caf::after(30s) >> [&] { FAIL() << "no answer"; });
  EXPECT_EQ(batches(), 1u);
  EXPECT_GT(commit_errors(), 0);
  EXPECT_EQ(item_count(), 199);
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT count(*) FROM items WHERE k = 'k137'"), "0");
}

TEST_F(WriterTest, ConflictsAndAppErrorsFailAloneAcrossKinds) {
  test::sql_exec(db_->url(), "INSERT INTO items (k, n) VALUES ('taken', 1)");
  auto w = writer(options(300ms));
  caf::scoped_actor self{*sys_};
  // One batch, three kinds: a unique violation, an app_error and good rows of each kind.
  auto h1 = self->request(w, 10s, persist_atom::value, item("taken", 1, "strict"));
  auto h2 = self->request(w, 10s, persist_atom::value, item("s1", 1, "strict"));
  auto h3 = self->request(w, 10s, persist_atom::value,
                          write_op{"picky", {{"k", "p-bad"}, {"n", 1}, {"reject", true}}});
  auto h4 = self->request(w, 10s, persist_atom::value, item("p1", 1, "picky"));
  auto h5 = self->request(w, 10s, persist_atom::value, item("i1", 1, "item"));
  auto expect_error = [&](auto& h, errc code) {
    h.receive([&](const nlohmann::json& j) { ADD_FAILURE() << "unexpected success " << j.dump(); },
              [&](const caf::error& e) { EXPECT_EQ(code_of(e), code) << message_of(e); });
  };
  auto expect_ok = [&](auto& h) {
    h.receive([](const nlohmann::json& j) { EXPECT_TRUE(j.is_number() || j.contains("id")); },
              [&](const caf::error& e) { ADD_FAILURE() << message_of(e); });
  };
  expect_error(h1, errc::conflict);
  expect_ok(h2);
  expect_error(h3, errc::unprocessable);
  expect_ok(h4);
  expect_ok(h5);
  EXPECT_EQ(batches(), 1u);
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT string_agg(k, ',' ORDER BY k) FROM items"),
            "i1,p1,s1,taken");
}

TEST_F(WriterTest, RowsQueuedDuringACommitDoNotWaitForMaxDelay) {
  // A busy writer commits what queued up during its last batch as soon as it has taken it all
  // in; only a writer that was idle waits db.batch_max_delay_ms to gather company.
  auto o = options(3s);
  o.kinds["slow"] = [](pqxx::work& tx, const std::vector<nlohmann::json>& rows) {
    std::this_thread::sleep_for(600ms);
    return insert_item_batch(tx, rows);
  };
  auto w = writer(std::move(o));
  auto started = std::chrono::steady_clock::now();
  std::thread first(
      [&] { EXPECT_TRUE(ask(*sys_, w, persist_atom::value, item("a", 1, "slow")).ok); });
  std::this_thread::sleep_for(3300ms); // the first batch is committing now (3 s delay + 600 ms)
  auto second = ask(*sys_, w, persist_atom::value, item("b", 1));
  auto took = std::chrono::steady_clock::now() - started;
  first.join();
  ASSERT_TRUE(second.ok) << second;
  // Idle, the second row would have waited another 3 s (until ~6.6 s).
  EXPECT_LT(took, 5s);
  EXPECT_EQ(item_count(), 2);
}

TEST_F(WriterTest, MinIntervalSpacesBatchesSoTheyGrow) {
  // The inbound writer's setting: nobody waits for these commits, so a batch starts at most
  // every min_interval and holds everything that arrived meanwhile.
  auto o = options(1ms); // alone, each wave below would be a batch of its own
  o.min_interval = 500ms;
  auto w = writer(std::move(o));
  caf::scoped_actor self{*sys_};
  auto started = std::chrono::steady_clock::now();
  // 3 waves of 20 rows, 150 ms apart: all within the first interval.
  for (int wave = 0; wave < 3; ++wave) {
    sys_->spawn(client, w, caf::actor{self}, "w" + std::to_string(wave) + "-", 20, -1);
    std::this_thread::sleep_for(150ms);
  }
  int answered = 0;
  for (int i = 0; i < 3; ++i)
    self->receive([&](int ok, const nlohmann::json&) { answered += ok; },
                  caf::after(10s) >> [&] { FAIL() << "no answer"; });
  EXPECT_EQ(answered, 60);
  EXPECT_EQ(item_count(), 60);
  EXPECT_EQ(batches(), 1u);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 500ms);
}

TEST_F(WriterTest, LateKindsRunLastInTheirBatch) {
  // Kinds that lock rows shared by all writers (usage counters) run last, so the lock is held
  // for the shortest part of the transaction, whatever order the rows arrived in.
  auto order = std::make_shared<std::vector<std::string>>();
  auto mtx = std::make_shared<std::mutex>();
  auto recording = [order, mtx](std::string name) {
    return [order, mtx, name](pqxx::work& tx, const std::vector<nlohmann::json>& rows) {
      {
        std::lock_guard<std::mutex> guard{*mtx};
        order->push_back(name);
      }
      return insert_item_batch(tx, rows);
    };
  };
  auto o = options(300ms); // both rows wait for the same flush
  o.kinds = {{"late", recording("late")}, {"early", recording("early")}};
  o.late_kinds = {"late"};
  auto w = writer(std::move(o));
  caf::scoped_actor self{*sys_};
  self->send(w, persist_atom::value, item("l", 1, "late"));
  self->send(w, persist_atom::value, item("e", 1, "early"));
  for (int i = 0; i < 2; ++i)
    self->receive([](const nlohmann::json&) {},
                  caf::after(10s) >> [] { FAIL() << "no answer from the writer"; });
  EXPECT_EQ(*order, (std::vector<std::string>{"early", "late"}));
  EXPECT_EQ(item_count(), 2);
}

TEST_F(WriterTest, UnknownKindIsRefused) {
  auto w = writer(options());
  auto r = ask(*sys_, w, persist_atom::value, item("x", 1, "nope"));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.code(), errc::internal) << r;
}

TEST_F(WriterTest, ExitFlushesWaitingRows) {
  auto w = writer(options(10s));
  caf::scoped_actor self{*sys_};
  auto h = self->request(w, 10s, persist_atom::value, item("last-words"));
  caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
  h.receive([](const nlohmann::json& j) { EXPECT_TRUE(j.contains("id")) << j.dump(); },
            [](const caf::error& e) { ADD_FAILURE() << message_of(e); });
  EXPECT_EQ(item_count(), 1);
}

TEST_F(WriterTest, UnreachableDatabaseFailsFastAndRefusesAtOnce) {
  auto cfg = db_cfg();
  cfg.url = "postgresql://postgres:s3cret@127.0.0.1:" + std::to_string(test::closed_port()) + "/x";
  auto o = options();
  o.max_backoff = 5000ms;
  auto w = writer(o, cfg);
  auto first = ask(*sys_, w, persist_atom::value, item("a"));
  ASSERT_FALSE(first.ok);
  EXPECT_EQ(first.code(), errc::storage_unavailable) << first;
  EXPECT_LT(first.took, 5s);
  EXPECT_EQ(first.message().find("s3cret"), std::string::npos) << first;
  for (int i = 0; i < 20; ++i) {
    auto r = ask(*sys_, w, persist_atom::value, item("b"));
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.code(), errc::storage_unavailable) << r;
    EXPECT_LT(r.took, 1s);
  }
  EXPECT_EQ(metrics_.get_gauge("parley_db_writer_up", "").value(), 0);
}

TEST_F(WriterTest, TerminatedBackendIsReplacedTransparently) {
  auto w = writer(options());
  ASSERT_TRUE(ask(*sys_, w, persist_atom::value, item("before")).ok);
  EXPECT_EQ(test::sql_value(test::admin_url(),
                            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                            "WHERE application_name = 'parley-writer' AND datname = '" +
                                db_->name() + "'"),
            "1");
  auto r = ask(*sys_, w, persist_atom::value, item("after"));
  EXPECT_TRUE(r.ok) << r;
  EXPECT_EQ(item_count(), 2);
}

TEST_F(WriterTest, RecoversWhenTheDatabaseComesBack) {
  // Route the writer through a proxy that can play "database down".
  auto proxied = test::proxy_database(test::admin_url(), db_->name());
  if (!proxied)
    GTEST_SKIP() << "needs PARLEY_TEST_PG_URL on 127.0.0.1/localhost with an explicit port";
  auto& proxy = *proxied->proxy;
  auto cfg = db_cfg();
  cfg.url = proxied->url;
  auto w = writer(options(), cfg);
  ASSERT_TRUE(ask(*sys_, w, persist_atom::value, item("up")).ok);

  proxy.stop();
  {
    // Everything waiting for the batch that finds the database gone fails, and fast.
    caf::scoped_actor self{*sys_};
    auto started = std::chrono::steady_clock::now();
    sys_->spawn(client, w, caf::actor{self}, "down", 50, -1);
    self->receive(
        [&](int ok, const nlohmann::json& errors) {
          EXPECT_EQ(ok, 0);
          EXPECT_EQ(errors.size(), 50u);
          for (const auto& code : errors)
            EXPECT_EQ(code, "storage_unavailable");
        },
        caf::after(30s) >> [&] { FAIL() << "no answer"; });
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  }
  auto refused = ask(*sys_, w, persist_atom::value, item("down"));
  EXPECT_EQ(refused.code(), errc::storage_unavailable) << refused;
  EXPECT_LT(refused.took, 1s);

  proxy.start();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  test::reply r;
  int refusals = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    r = ask(*sys_, w, persist_atom::value, item("back"));
    if (r.ok)
      break;
    ++refusals;
    EXPECT_EQ(r.code(), errc::storage_unavailable) << r;
    std::this_thread::sleep_for(20ms); // the test thread polls; the writer never sleeps
  }
  ASSERT_TRUE(r.ok) << "writer did not reconnect: " << r;
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT string_agg(k, ',' ORDER BY k) FROM items"),
            "back,up");
  EXPECT_EQ(metrics_.get_gauge("parley_db_writer_up", "").value(), 1);
}

} // namespace
} // namespace parley::persistence
