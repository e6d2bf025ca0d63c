// Deleting a tenant removes its rows from the hot tables (no foreign keys there, migration 0007),
// and rows that land afterwards (a write in flight at the delete) are removed by the sweep.
#include <pqxx/pqxx>

#include "actors/tenant_store.hpp"
#include "tests/actors/store_fixture.hpp"

namespace parley {
namespace {

class tenant_sweep_test : public test::store_fixture {
protected:
  /// One row of `tenant`'s (on `channel`) in every hot table.
  void add_rows(const std::string& tenant, const std::string& channel, const std::string& tag) {
    test::sql_exec(db_->url(), R"(
      WITH k AS (INSERT INTO contacts (tenant_id, wa_id) VALUES (')" +
                                   tenant + "', '" + tag + R"(')),
      c AS (INSERT INTO conversations (tenant_id, channel_id, wa_id)
            VALUES (')" + tenant + "', '" +
                                   channel + "', '" + tag + R"(') RETURNING id),
      m AS (INSERT INTO messages (tenant_id, conversation_id, channel_id, direction, wamid, type,
                                  content, status)
            SELECT ')" + tenant + "', c.id, '" +
                                   channel + "', 'outbound', 'wamid." + tag +
                                   R"(', 'text', '{}', 'sent' FROM c RETURNING id),
      o AS (INSERT INTO outbox (tenant_id, channel_id, message_id, kind, to_wa, payload)
            SELECT ')" + tenant + "', '" +
                                   channel + R"(', m.id, 'message', '1', '{}' FROM m
            RETURNING id, message_id),
      a AS (INSERT INTO delivery_attempts (outbox_id, attempt, tenant_id, channel_id, message_id,
                                           kind, outcome, started_at, latency_ms)
            SELECT o.id, 1, ')" + tenant +
                                   "', '" + channel + R"(', o.message_id, 'message', 'sent',
                   now(), 1 FROM o)
      INSERT INTO message_status_events (tenant_id, channel_id, wamid, status)
      VALUES (')" + tenant + "', '" +
                                   channel + "', 'wamid." + tag + "', 'sent')");
  }

  /// Rows of `tenant` in all hot tables together (status reports: by `channel`).
  int64_t rows_of(const std::string& tenant, const std::string& channel) {
    return std::stoll(test::sql_value(
        db_->url(), "SELECT (SELECT count(*) FROM contacts WHERE tenant_id = '" + tenant +
                        "') + "
                        "(SELECT count(*) FROM conversations WHERE tenant_id = '" +
                        tenant +
                        "') + "
                        "(SELECT count(*) FROM messages WHERE tenant_id = '" +
                        tenant +
                        "') + "
                        "(SELECT count(*) FROM outbox WHERE tenant_id = '" +
                        tenant +
                        "') + "
                        "(SELECT count(*) FROM delivery_attempts WHERE tenant_id = '" +
                        tenant +
                        "') + "
                        "(SELECT count(*) FROM message_status_events WHERE channel_id = '" +
                        channel + "')"));
  }
};

TEST_F(tenant_sweep_test, RowsLandingAfterTheDeleteAreSweptAndOthersAreKept) {
  auto other = test::sql_value(db_->url(), "INSERT INTO tenants (name, slug) VALUES ('Other', "
                                           "'other') RETURNING id::text");
  auto other_channel = test::sql_value(
      db_->url(), "INSERT INTO channels (tenant_id, phone_number_id, waba_id, "
                  "display_phone_number, access_token_enc) VALUES ('" +
                      other + "', '2002', 'waba', '+1556', 'x') RETURNING id::text");
  add_rows(tenant_id, channel_id, "before");
  add_rows(other, other_channel, "other");
  ASSERT_EQ(rows_of(tenant_id, channel_id), 6);

  run_job(tenant_store::remove(tenant_id));
  EXPECT_EQ(rows_of(tenant_id, channel_id), 0) << "the delete itself removes every row";
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT '" + channel_id +
                                            "'::uuid = ANY(channel_ids) FROM deleted_tenants "
                                            "WHERE id = '" +
                                            tenant_id + "'"),
            "t")
      << "the delete is recorded with the tenant's channels";

  // A batch that was in flight when the tenant went commits afterwards.
  add_rows(tenant_id, channel_id, "late");
  ASSERT_EQ(rows_of(tenant_id, channel_id), 6);
  auto swept = run_job(tenant_store::sweep_deleted(std::chrono::hours(24)));
  EXPECT_EQ(swept["tenants"], 1);
  EXPECT_EQ(swept["rows"], 6);
  EXPECT_EQ(rows_of(tenant_id, channel_id), 0);
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT swept_rows FROM deleted_tenants WHERE id = '" +
                                            tenant_id + "'"),
            "6");
  EXPECT_EQ(rows_of(other, other_channel), 6) << "another tenant's rows are never touched";

  // Nothing left: the next pass finds nothing; outside the horizon the tenant is not looked at.
  EXPECT_EQ(run_job(tenant_store::sweep_deleted(std::chrono::hours(24)))["rows"], 0);
  EXPECT_EQ(run_job(tenant_store::sweep_deleted(std::chrono::seconds(0)))["tenants"], 0);
}

TEST_F(tenant_sweep_test, DeletingAnUnknownTenantRecordsNothing) {
  EXPECT_THROW(run_job(tenant_store::remove("00000000-0000-4000-8000-000000000000")),
               std::exception);
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT count(*) FROM deleted_tenants"), "0");
}

} // namespace
} // namespace parley
