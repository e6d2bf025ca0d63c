// The outbound accept batch against a real PostgreSQL, where its correctness depends on
// PostgreSQL's concurrency rules rather than on the rows alone.
#include <future>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "actors/outbound_store.hpp"
#include "persistence/batch.hpp"
#include "persistence/migrations.hpp"
#include "tests/persistence/pg_support.hpp"

using namespace parley;
using namespace std::chrono_literals;

namespace {

class outbound_store_test : public ::testing::Test {
protected:
  void SetUp() override {
    if (test::admin_url().empty())
      GTEST_SKIP() << "PARLEY_TEST_PG_URL is not set";
    db_ = std::make_unique<test::scratch_db>(test::admin_url());
    persistence::migrate(db_->url());
    tenant_id = test::sql_value(db_->url(), "INSERT INTO tenants (name, slug) VALUES ('Acme', "
                                            "'acme') RETURNING id::text");
    channel_id = test::sql_value(
        db_->url(), "INSERT INTO channels (tenant_id, phone_number_id, waba_id, "
                    "display_phone_number, access_token_enc) VALUES ('" +
                        tenant_id + "', '2001', 'waba', '+1555', 'x') RETURNING id::text");
  }

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
    persistence::db_session session;
    session.url = db_->url();
    std::vector<persistence::write_op> ops;
    for (auto& r : rows)
      ops.push_back({outbound_store::accept_kind, std::move(r)});
    return persistence::run_batch(session, std::move(ops), outbound_store::batch_handlers(), {});
  }

  std::unique_ptr<test::scratch_db> db_;
  std::string tenant_id;
  std::string channel_id;
};

// Regression for templates opening their conversation in the look-up statement: a conversation
// another transaction creates meanwhile is invisible to that statement's snapshot; the send must
// go to the conversation that won, not be refused for want of one.
TEST_F(outbound_store_test, TemplateWhoseConversationIsCreatedConcurrentlyIsAcceptedIntoIt) {
  pqxx::connection other{db_->url()};
  pqxx::work racing{other};
  auto winner =
      racing
          .exec("INSERT INTO conversations (tenant_id, channel_id, wa_id) VALUES ('" + tenant_id +
                "', '" + channel_id + "', '4915550101') RETURNING id::text")[0][0]
          .as<std::string>();
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
