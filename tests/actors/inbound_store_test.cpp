// The inbound batch statement against a real PostgreSQL, where its correctness depends on
// PostgreSQL's concurrency rules rather than on the rows alone.
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "actors/inbound_store.hpp"
#include "tests/actors/store_fixture.hpp"

using namespace parley;
using namespace std::chrono_literals;

namespace {

class inbound_store_test : public test::store_fixture {
protected:
  nlohmann::json message(const std::string& wa_id, const std::string& wamid) const {
    return {{"tenant_id", tenant_id},   {"known", false},
            {"channel_id", channel_id}, {"wa_id", wa_id},
            {"profile_name", "Ada"},    {"wamid", wamid},
            {"type", "text"},           {"content", {{"text", "hi"}}},
            {"context", nullptr},       {"ts", 1800000000},
            {"raw_event_id", 1}};
  }

  persistence::batch_outcome store(std::vector<nlohmann::json> rows) {
    return run(inbound_store::message_kind, std::move(rows), inbound_store::batch_handlers());
  }
};

// Regression for the one-statement batch: a conversation that another transaction creates while
// the statement runs is invisible to the statement's snapshot, so its message found no
// conversation; it must be stored in the conversation that won, not fail the batch.
TEST_F(inbound_store_test, MessageWhoseConversationIsCreatedConcurrentlyIsStoredInIt) {
  pqxx::connection other{db_->url()};
  pqxx::work racing{other};
  racing.exec("SELECT set_config('parley.scope', 'platform', true)");
  auto winner = insert_conversation(racing, "4915550001");
  // The batch blocks on the uncommitted conversation (its insert conflicts) until it commits.
  auto outcome = std::async(std::launch::async, [&] {
    return store({message("4915550001", "wamid.race"), message("4915550002", "wamid.calm")});
  });
  ASSERT_EQ(outcome.wait_for(500ms), std::future_status::timeout) << "the batch did not wait";
  racing.commit();
  auto out = outcome.get();
  ASSERT_FALSE(out.unavailable);
  ASSERT_EQ(out.rows.size(), 2u);
  for (const auto& row : out.rows)
    ASSERT_TRUE(row.ok) << row.failure.message;
  EXPECT_EQ(out.rows[0].value["conversation_id"], winner);
  EXPECT_EQ(out.rows[0].value["duplicate"], false);
  EXPECT_NE(out.rows[1].value["conversation_id"], winner);
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT count(*) FROM messages"), "2");
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT conversation_id::text FROM messages WHERE wamid "
                                        "= 'wamid.race'"),
            winner);
  // The message counts in the conversation that existed (the counters UPDATE), once.
  EXPECT_EQ(test::sql_value(db_->url(),
                            "SELECT unread_count FROM conversations WHERE id = '" + winner + "'"),
            "1");
}

// The same wamid twice in one batch and again in a later batch: one message, the first copy new.
TEST_F(inbound_store_test, RepeatedWamidsAreOneMessage) {
  auto first = store({message("4915550003", "wamid.twice"), message("4915550003", "wamid.twice")});
  ASSERT_TRUE(first.rows[0].ok && first.rows[1].ok);
  EXPECT_EQ(first.rows[0].value["duplicate"], false);
  EXPECT_EQ(first.rows[1].value["duplicate"], true);
  auto again = store({message("4915550003", "wamid.twice")});
  ASSERT_TRUE(again.rows[0].ok) << again.rows[0].failure.message;
  EXPECT_EQ(again.rows[0].value["duplicate"], true);
  EXPECT_EQ(again.rows[0].value["message_id"], first.rows[0].value["message_id"]);
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT count(*) FROM messages"), "1");
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT unread_count FROM conversations"), "1");
}

// A batch of known contacts only takes the statement without the upserts: the counters still
// move, and a "known" contact whose rows are gone (deleted behind its actor's back) is stored
// through the upserting statement instead of failing.
TEST_F(inbound_store_test, KnownContactsCountAndVanishedOnesAreUpsertedAgain) {
  ASSERT_TRUE(store({message("4915550004", "wamid.k1")}).rows[0].ok);
  auto known = [&](const std::string& wa_id, const std::string& wamid) {
    auto row = message(wa_id, wamid);
    row["known"] = true;
    return row;
  };
  auto out = store({known("4915550004", "wamid.k2"), known("4915550004", "wamid.k3")});
  ASSERT_TRUE(out.rows[0].ok && out.rows[1].ok);
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT unread_count FROM conversations "
                                        "WHERE wa_id = '4915550004'"),
            "3");
  auto vanished = store({known("4915550005", "wamid.k4")});
  ASSERT_TRUE(vanished.rows[0].ok) << vanished.rows[0].failure.message;
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT count(*) FROM contacts WHERE wa_id = '4915550005'"),
            "1");
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT unread_count FROM conversations "
                                        "WHERE wa_id = '4915550005'"),
            "1");
}

} // namespace
