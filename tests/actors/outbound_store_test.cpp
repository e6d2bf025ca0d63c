// The outbound accept batch against a real PostgreSQL, where its correctness depends on
// PostgreSQL's concurrency rules rather than on the rows alone.
#include <future>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "actors/outbound_store.hpp"
#include "tests/actors/store_fixture.hpp"

using namespace parley;
using namespace std::chrono_literals;

namespace {

class outbound_store_test : public test::store_fixture {
protected:
  nlohmann::json template_to(const std::string& to) const {
    nlohmann::json tpl{{"name", "hello_world"}, {"language", {{"code", "en_US"}}}};
    return {{"tenant_id", tenant_id},
            {"channel_id", channel_id},
            {"kind", "message"},
            {"to", to},
            {"type", "template"},
            {"content", {{"template", tpl}}},
            {"payload", {{"messaging_product", "whatsapp"}, {"to", to}, {"template", tpl}}},
            {"client_message_id", nullptr},
            {"needs_window", false}};
  }

  persistence::batch_outcome accept(std::vector<nlohmann::json> rows) {
    return run(outbound_store::accept_kind, std::move(rows), outbound_store::batch_handlers());
  }
};

// Regression for templates opening their conversation in the look-up statement: a conversation
// another transaction creates meanwhile is invisible to that statement's snapshot; the send must
// go to the conversation that won, not be refused for want of one.
TEST_F(outbound_store_test, TemplateWhoseConversationIsCreatedConcurrentlyIsAcceptedIntoIt) {
  pqxx::connection other{db_->url()};
  pqxx::work racing{other};
  auto winner = insert_conversation(racing, "4915550101");
  auto outcome = std::async(std::launch::async, [&] {
    return accept({template_to("4915550101"), template_to("4915550102")});
  });
  ASSERT_EQ(outcome.wait_for(500ms), std::future_status::timeout) << "the batch did not wait";
  racing.commit();
  auto out = outcome.get();
  ASSERT_FALSE(out.unavailable);
  ASSERT_EQ(out.rows.size(), 2u);
  for (const auto& row : out.rows) {
    ASSERT_TRUE(row.ok) << row.failure.message;
    ASSERT_FALSE(row.value.contains("reject")) << row.value.dump();
  }
  EXPECT_EQ(out.rows[0].value["conversation_id"], winner);
  EXPECT_NE(out.rows[1].value["conversation_id"], winner);
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT count(*) FROM conversations"), "2");
  // Both conversations moved with their send.
  EXPECT_EQ(test::sql_value(db_->url(),
                            "SELECT count(*) FROM conversations WHERE last_message_at IS NOT NULL"),
            "2");
}

} // namespace
