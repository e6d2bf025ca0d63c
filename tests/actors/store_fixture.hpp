#pragma once
// A scratch database with one tenant and one channel, and a batch of one write kind run through
// the real committer: the set-up of the batch handlers' tests against a real PostgreSQL.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "persistence/batch.hpp"
#include "persistence/migrations.hpp"
#include "tests/persistence/pg_support.hpp"

namespace parley::test {

class store_fixture : public ::testing::Test {
protected:
  void SetUp() override {
    if (admin_url().empty())
      GTEST_SKIP() << "PARLEY_TEST_PG_URL is not set";
    db_ = std::make_unique<scratch_db>(admin_url());
    persistence::migrate(db_->url());
    tenant_id = sql_value(db_->url(), "INSERT INTO tenants (name, slug) VALUES ('Acme', "
                                      "'acme') RETURNING id::text");
    channel_id = sql_value(db_->url(), "INSERT INTO channels (tenant_id, phone_number_id, waba_id, "
                                       "display_phone_number, access_token_enc) VALUES ('" +
                                           tenant_id +
                                           "', '1001', 'waba', '+1555', 'x') RETURNING id::text");
  }

  /// A pool job run in its own committed transaction, as a pool worker would (without the scope).
  nlohmann::json run_job(const persistence::db_job& job) {
    pqxx::connection conn{db_->url()};
    pqxx::work tx{conn};
    auto out = job.fn(tx);
    tx.commit();
    return out;
  }

  /// `rows` as one batch of `kind`, committed (or not) as the writer would.
  persistence::batch_outcome run(const char* kind, std::vector<nlohmann::json> rows,
                                 const std::map<std::string, persistence::batch_fn>& handlers) {
    persistence::db_session session;
    session.url = db_->url();
    std::vector<persistence::write_op> ops;
    for (auto& r : rows)
      ops.push_back({kind, std::move(r)});
    return persistence::run_batch(session, std::move(ops), handlers, {});
  }

  /// Inserts the conversation of (channel_id, `wa_id`) in `racing`, a transaction the test keeps
  /// open to play a concurrent writer, and returns its id.
  std::string insert_conversation(pqxx::work& racing, const std::string& wa_id) const {
    return racing
        .exec("INSERT INTO conversations (tenant_id, channel_id, wa_id) VALUES ('" + tenant_id +
              "', '" + channel_id + "', '" + wa_id + "') RETURNING id::text")[0][0]
        .as<std::string>();
  }

  std::unique_ptr<scratch_db> db_;
  std::string tenant_id;
  std::string channel_id;
};

} // namespace parley::test
