// retention.raw_event_days: processed raw events past retention are deleted a bounded page at a
// time; unprocessed ones (the replay's work) and recent ones are kept whatever their age.
#include <pqxx/pqxx>

#include "actors/inbound_store.hpp"
#include "tests/actors/store_fixture.hpp"

namespace parley {
namespace {

class raw_event_retention_test : public test::store_fixture {
protected:
  /// A raw event received `age_days` ago, processed or not (then still pending, as the journal
  /// leaves it); returns its id.
  std::string add_event(int age_days, bool processed) {
    auto age = "make_interval(days => " + std::to_string(age_days) + ")";
    return test::sql_value(
        db_->url(),
        "WITH e AS (INSERT INTO raw_webhook_events (received_at, body, processed_at) VALUES (now() "
        "- " +
            age + ", '{}'::bytea, " + (processed ? "now() - " + age : std::string{"NULL"}) +
            ") RETURNING id), p AS (INSERT INTO raw_webhook_events_pending (id) SELECT id FROM e "
            "WHERE " +
            (processed ? "false" : "true") + ") SELECT id::text FROM e");
  }

  bool exists(const std::string& id) {
    return test::sql_value(db_->url(),
                           "SELECT count(*) FROM raw_webhook_events WHERE id = " + id) == "1";
  }
};

TEST_F(raw_event_retention_test, OnlyProcessedEventsPastRetentionGo) {
  auto old_done = add_event(40, true);
  auto old_pending = add_event(40, false); // never processed: the sweep still owes it work
  auto edge_done = add_event(29, true);
  auto new_done = add_event(0, true);
  auto r = run_job(inbound_store::prune_raw_events(30, 100));
  EXPECT_EQ(r["deleted"], 1);
  EXPECT_FALSE(exists(old_done));
  EXPECT_TRUE(exists(old_pending));
  EXPECT_TRUE(exists(edge_done));
  EXPECT_TRUE(exists(new_done));
  // Nothing left to prune: a second run deletes nothing.
  EXPECT_EQ(run_job(inbound_store::prune_raw_events(30, 100))["deleted"], 0);
}

TEST_F(raw_event_retention_test, PagesStepOverEventsStillOwedWork) {
  auto stuck = add_event(60, false);
  auto a = add_event(50, true);
  auto b = add_event(45, true);
  auto c = add_event(40, true);
  auto recent = add_event(1, true);
  // A page of two: the stuck event and the oldest processed one; the page is full and still old,
  // so the caller goes on after it.
  auto first = run_job(inbound_store::prune_raw_events(30, 2));
  EXPECT_EQ(first["deleted"], 1);
  EXPECT_TRUE(first["more"].get<bool>());
  EXPECT_EQ(first["last_id"].get<int64_t>(), std::stoll(a));
  auto second = run_job(inbound_store::prune_raw_events(30, 2, first["last_id"].get<int64_t>()));
  EXPECT_EQ(second["deleted"], 2);
  EXPECT_TRUE(second["more"].get<bool>());
  // The next page reaches an event within retention: done.
  auto third = run_job(inbound_store::prune_raw_events(30, 2, second["last_id"].get<int64_t>()));
  EXPECT_EQ(third["deleted"], 0);
  EXPECT_FALSE(third["more"].get<bool>());
  EXPECT_TRUE(exists(stuck));
  EXPECT_FALSE(exists(a));
  EXPECT_FALSE(exists(b));
  EXPECT_FALSE(exists(c));
  EXPECT_TRUE(exists(recent));
}

TEST_F(raw_event_retention_test, MessagesOutliveTheirRawEvent) {
  auto ev = add_event(40, true);
  test::sql_exec(db_->url(), R"(
    WITH c AS (INSERT INTO conversations (tenant_id, channel_id, wa_id)
               VALUES (')" + tenant_id +
                                 "', '" + channel_id +
                                 R"(', '15550001') RETURNING id)
    INSERT INTO messages (tenant_id, conversation_id, channel_id, direction, wamid, type,
                          content, status, raw_event_id)
    SELECT ')" + tenant_id + "', c.id, '" +
                                 channel_id +
                                 R"(', 'inbound', 'wamid.kept', 'text', '{"body":"hi"}',
           'received', )" + ev + " FROM c");
  EXPECT_EQ(run_job(inbound_store::prune_raw_events(30, 100))["deleted"], 1);
  EXPECT_EQ(test::sql_value(db_->url(),
                            "SELECT content->>'body' FROM messages WHERE wamid = 'wamid.kept'"),
            "hi");
}

} // namespace
} // namespace parley
