#include "persistence/journal.hpp"

#include <condition_variable>
#include <mutex>

#include <gtest/gtest.h>

#include "actor_support.hpp"
#include "persistence/migrations.hpp"
#include "pg_support.hpp"
#include "runtime/errors.hpp"
#include "tcp_proxy.hpp"

namespace parley::persistence {
namespace {

using namespace std::chrono_literals;

/// What the journal answered, collected from its thread.
class answers {
public:
  /// A journal_entry whose completion lands here under `key`.
  journal_entry entry(const std::string& key, std::string body, std::string channel_id = "") {
    journal_entry e;
    e.body = std::move(body);
    e.channel_id = std::move(channel_id);
    e.request_id = "req-" + key;
    e.done = [this, key](int64_t id, const caf::error& err) {
      std::lock_guard<std::mutex> g{mtx_};
      got_[key] = {id, err ? code_of(err) : errc::none, err ? message_of(err) : ""};
      cv_.notify_all();
    };
    return e;
  }

  struct answer {
    int64_t id = 0;
    errc code = errc::none;
    std::string message;
  };

  /// Waits until `n` answers are in (or 20 s passed); returns them by key.
  std::map<std::string, answer> wait(size_t n) {
    std::unique_lock<std::mutex> g{mtx_};
    cv_.wait_for(g, 20s, [&] { return got_.size() >= n; });
    return got_;
  }

  void clear() {
    std::lock_guard<std::mutex> g{mtx_};
    got_.clear();
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::map<std::string, answer> got_;
};

/// The sink: every event the journal hands on, in arrival order.
struct sink_log {
  std::mutex mtx;
  std::vector<journaled_event> events;
  size_t batches = 0;
};

caf::behavior sink(caf::event_based_actor*, std::shared_ptr<sink_log> log) {
  return {[log](journaled_atom, journaled_events& events) {
    std::lock_guard<std::mutex> g{log->mtx};
    ++log->batches;
    for (auto& e : events)
      log->events.push_back(std::move(e));
  }};
}

class JournalTest : public test::pg_test {
protected:
  void SetUp() override {
    test::pg_test::SetUp();
    if (HasFatalFailure())
      return;
    migrate(db_->url());
    log_ = std::make_shared<sink_log>();
    sink_slot_.set(stop_later(sys_->spawn(sink, log_)));
  }

  void TearDown() override {
    sink_slot_.set(nullptr);
    test::pg_test::TearDown();
  }

  caf::actor journal(config::db_config cfg, std::chrono::milliseconds max_backoff = 400ms) {
    auto o = make_journal_options(cfg, &sink_slot_);
    o.max_backoff = max_backoff;
    return stop_later(spawn_journal(*sys_, cfg, o, metrics_));
  }
  caf::actor journal() { return journal(db_cfg()); }

  int raw_count() {
    return std::stoi(test::sql_value(db_->url(), "SELECT count(*) FROM raw_webhook_events"));
  }

  /// Waits until the sink holds `n` events.
  size_t sunk(size_t n) {
    for (int i = 0; i < 400; ++i) {
      {
        std::lock_guard<std::mutex> g{log_->mtx};
        if (log_->events.size() >= n)
          return log_->events.size();
      }
      std::this_thread::sleep_for(5ms);
    }
    std::lock_guard<std::mutex> g{log_->mtx};
    return log_->events.size();
  }

  answers got_;
  std::shared_ptr<sink_log> log_;
  runtime::actor_slot sink_slot_;
};

TEST_F(JournalTest, EntriesAreDurableBeforeTheirAnswerAndHandedOnInOrder) {
  auto j = journal();
  const std::string channel = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
  // Bodies are stored byte for byte, whatever they hold (Meta signs bytes, not JSON).
  const std::string odd("{\"bytes\":\"\xff\xfe\x00\x01\"}", 16);
  for (int i = 0; i < 50; ++i)
    caf::anon_send(j, journal_atom::value,
                   got_.entry(std::to_string(i), i == 7 ? odd : "body-" + std::to_string(i),
                              i % 2 ? channel : ""));
  auto all = got_.wait(50);
  ASSERT_EQ(all.size(), 50u);
  std::set<int64_t> ids;
  for (const auto& [key, a] : all) {
    EXPECT_EQ(a.code, errc::none) << key << ": " << a.message;
    EXPECT_GT(a.id, 0) << key;
    ids.insert(a.id);
  }
  EXPECT_EQ(ids.size(), 50u) << "every entry has its own id";
  EXPECT_EQ(raw_count(), 50);
  auto id7 = std::to_string(all["7"].id);
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT encode(body, 'hex') FROM raw_webhook_events "
                                        "WHERE id = " +
                                            id7),
            "7b226279746573223a22fffe0001227d");
  auto id3 = std::to_string(all["3"].id);
  EXPECT_EQ(test::sql_value(db_->url(),
                            "SELECT channel_id::text || ' ' || request_id || ' ' || "
                            "convert_from(body, 'UTF8') || ' ' || (processed_at IS NULL)::text "
                            "FROM raw_webhook_events WHERE id = " +
                                id3),
            channel + " req-3 body-3 true");
  // Each event owes its processing until ingest says otherwise, committed with the event.
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT count(*) FROM raw_webhook_events_pending p "
                                        "JOIN raw_webhook_events e USING (id)"),
            "50");
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT channel_id IS NULL FROM raw_webhook_events "
                                        "WHERE id = " +
                                            std::to_string(all["4"].id)),
            "t");
  // Everything committed reaches the sink once, with its id, body and channel.
  ASSERT_EQ(sunk(50), 50u);
  std::lock_guard<std::mutex> g{log_->mtx};
  std::map<int64_t, const journaled_event*> by_id;
  for (const auto& e : log_->events)
    by_id[e.id] = &e;
  ASSERT_EQ(by_id.size(), 50u);
  EXPECT_EQ(by_id[all["7"].id]->body, odd);
  EXPECT_EQ(by_id[all["3"].id]->channel_id, channel);
  EXPECT_EQ(by_id[all["4"].id]->channel_id, "");
  EXPECT_LT(log_->batches, 50u) << "entries that arrive together share a batch";
}

TEST_F(JournalTest, AnswersStatusForTheActorTree) {
  auto j = journal();
  auto r = test::ask(*sys_, j, status_atom::value);
  ASSERT_TRUE(r.ok) << r;
  EXPECT_EQ(r.value["state"], "running");
  EXPECT_TRUE(r.value.contains("mailbox"));
}

TEST_F(JournalTest, ChannelIdThatIsNotAUuidIsRefused) {
  auto j = journal();
  caf::anon_send(j, journal_atom::value, got_.entry("bad", "x", "not-a-uuid"));
  auto all = got_.wait(1);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all["bad"].code, errc::invalid_argument);
  EXPECT_EQ(raw_count(), 0);
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT count(*) FROM raw_webhook_events_pending"), "0");
}

TEST_F(JournalTest, UnreachableDatabaseAnswersUnavailableAtOnce) {
  auto cfg = db_cfg();
  cfg.url = "postgresql://postgres:s3cret@127.0.0.1:" + std::to_string(test::closed_port()) + "/x";
  auto j = journal(cfg, 5000ms);
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i)
    caf::anon_send(j, journal_atom::value, got_.entry(std::to_string(i), "x"));
  auto all = got_.wait(20);
  ASSERT_EQ(all.size(), 20u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  for (const auto& [key, a] : all) {
    EXPECT_EQ(a.code, errc::storage_unavailable) << key;
    EXPECT_EQ(a.message.find("s3cret"), std::string::npos) << a.message;
  }
  EXPECT_EQ(metrics_.get_gauge("parley_journal_up", "").value(), 0);
}

TEST_F(JournalTest, TerminatedBackendIsReplacedTransparently) {
  auto j = journal();
  caf::anon_send(j, journal_atom::value, got_.entry("before", "x"));
  ASSERT_EQ(got_.wait(1)["before"].code, errc::none);
  EXPECT_EQ(test::sql_value(test::admin_url(),
                            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                            "WHERE application_name = 'parley-journal' AND datname = '" +
                                db_->name() + "'"),
            "1");
  caf::anon_send(j, journal_atom::value, got_.entry("after", "y"));
  auto all = got_.wait(2);
  EXPECT_EQ(all["after"].code, errc::none) << all["after"].message;
  EXPECT_EQ(raw_count(), 2);
}

TEST_F(JournalTest, RecoversWhenTheDatabaseComesBack) {
  auto proxied = test::proxy_database(test::admin_url(), db_->name());
  if (!proxied)
    GTEST_SKIP() << "needs PARLEY_TEST_PG_URL on 127.0.0.1/localhost with an explicit port";
  auto& proxy = *proxied->proxy;
  auto cfg = db_cfg();
  cfg.url = proxied->url;
  auto j = journal(cfg, 200ms);
  caf::anon_send(j, journal_atom::value, got_.entry("up", "1"));
  ASSERT_EQ(got_.wait(1)["up"].code, errc::none);
  proxy.stop(); // the database "goes down": open connections are cut, new ones refused
  got_.clear();
  caf::anon_send(j, journal_atom::value, got_.entry("down", "2"));
  EXPECT_EQ(got_.wait(1)["down"].code, errc::storage_unavailable);
  proxy.start();
  // Back: within the backoff, entries are accepted again.
  bool stored = false;
  for (int i = 0; i < 100 && !stored; ++i) {
    got_.clear();
    caf::anon_send(j, journal_atom::value, got_.entry("again", "3"));
    stored = got_.wait(1)["again"].code == errc::none;
    if (!stored)
      std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(stored);
  EXPECT_EQ(metrics_.get_gauge("parley_journal_up", "").value(), 1);
}

} // namespace
} // namespace parley::persistence
