#include "persistence/db_pool.hpp"

#include <gtest/gtest.h>

#include "actor_support.hpp"
#include "pg_support.hpp"

namespace parley::persistence {
namespace {

using namespace std::chrono_literals;
using test::ask;

db_job read(std::function<nlohmann::json(pqxx::work&)> fn, std::string tenant = {}) {
  return db_job{std::move(tenant), true, std::move(fn)};
}

db_job write(std::function<nlohmann::json(pqxx::work&)> fn) {
  return db_job{{}, false, std::move(fn)};
}

class DbPoolTest : public test::pg_test {
protected:
  caf::actor pool() {
    if (!pool_)
      pool_ = stop_later(spawn_db_pool(*sys_, db_cfg(), metrics_));
    return pool_;
  }
  caf::actor pool_;
};

TEST_F(DbPoolTest, ExecReturnsJson) {
  auto r = ask(*sys_, pool(), exec_atom::value, read([](pqxx::work& tx) {
    return nlohmann::json{{"answer", tx.exec1("SELECT 40 + 2")[0].as<int>()}};
  }));
  ASSERT_TRUE(r.ok) << r;
  EXPECT_EQ(r.value, (nlohmann::json{{"answer", 42}}));
}

TEST_F(DbPoolTest, AppErrorArrivesWithItsCode) {
  auto r = ask(*sys_, pool(), exec_atom::value, read([](pqxx::work&) -> nlohmann::json {
    throw app_error(errc::not_found, "tenant not found");
  }));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.code(), errc::not_found);
  EXPECT_EQ(r.message(), "tenant not found");
}

TEST_F(DbPoolTest, WritesCommitAndReadOnlyJobsCannotWrite) {
  auto created = ask(*sys_, pool(), exec_atom::value, write([](pqxx::work& tx) {
    tx.exec("CREATE TABLE notes (body text UNIQUE)");
    tx.exec("INSERT INTO notes VALUES ('kept')");
    return nlohmann::json{};
  }));
  ASSERT_TRUE(created.ok) << created;
  auto sneaky = ask(*sys_, pool(), exec_atom::value, read([](pqxx::work& tx) {
    tx.exec("INSERT INTO notes VALUES ('sneaked in')");
    return nlohmann::json{};
  }));
  ASSERT_FALSE(sneaky.ok);
  EXPECT_EQ(sneaky.code(), errc::internal) << sneaky;
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT string_agg(body, ',') FROM notes"), "kept");
}

TEST_F(DbPoolTest, UniqueViolationIsAConflict) {
  auto r = ask(*sys_, pool(), exec_atom::value, write([](pqxx::work& tx) {
    tx.exec("CREATE TABLE slugs (slug text UNIQUE)");
    tx.exec("INSERT INTO slugs VALUES ('acme'), ('acme')");
    return nlohmann::json{};
  }));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.code(), errc::conflict) << r;
}

TEST_F(DbPoolTest, TenantIdIsSetForThatTransactionOnly) {
  auto setting = [](pqxx::work& tx) {
    auto v = tx.exec1("SELECT current_setting('parley.tenant_id', true)")[0];
    return nlohmann::json(v.is_null() ? "" : v.as<std::string>());
  };
  for (int i = 0; i < 4; ++i) { // both workers, twice
    auto scoped = ask(*sys_, pool(), exec_atom::value, read(setting, "tenant-7"));
    ASSERT_TRUE(scoped.ok) << scoped;
    EXPECT_EQ(scoped.value, "tenant-7");
    auto platform = ask(*sys_, pool(), exec_atom::value, read(setting));
    ASSERT_TRUE(platform.ok) << platform;
    EXPECT_EQ(platform.value, "");
  }
}

TEST_F(DbPoolTest, StatementTimeoutIsATimeout) {
  auto cfg = db_cfg();
  cfg.statement_timeout_ms = 200;
  auto p = stop_later(spawn_db_pool(*sys_, cfg, metrics_));
  auto r = ask(*sys_, p, exec_atom::value, read([](pqxx::work& tx) {
    tx.exec("SELECT pg_sleep(3)");
    return nlohmann::json{};
  }));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.code(), errc::timeout) << r;
  EXPECT_LT(r.took, 2s);
}

TEST_F(DbPoolTest, HealthAnswersTrue) {
  caf::scoped_actor self{*sys_};
  bool healthy = false;
  self->request(pool(), 10s, health_atom::value)
      .receive([&](bool ok) { healthy = ok; }, [&](caf::error&) {});
  EXPECT_TRUE(healthy);
}

TEST_F(DbPoolTest, UnreachableDatabaseFailsFastWithoutCredentials) {
  auto cfg = db_cfg();
  cfg.url = "postgresql://postgres:s3cret@127.0.0.1:" + std::to_string(test::closed_port()) + "/x";
  auto p = stop_later(spawn_db_pool(*sys_, cfg, metrics_));
  for (int i = 0; i < 3; ++i) {
    auto r = ask(*sys_, p, exec_atom::value, read([](pqxx::work&) { return nlohmann::json{}; }));
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.code(), errc::storage_unavailable) << r;
    EXPECT_EQ(r.message().rfind("database unavailable: ", 0), 0u) << r;
    EXPECT_EQ(r.message().find("s3cret"), std::string::npos) << r;
    EXPECT_LT(r.took, 5s);
  }
  caf::scoped_actor self{*sys_};
  bool healthy = true;
  self->request(p, 10s, health_atom::value)
      .receive([&](bool ok) { healthy = ok; }, [&](caf::error&) {});
  EXPECT_FALSE(healthy);
}

TEST_F(DbPoolTest, SurvivesATerminatedBackend) {
  auto cfg = db_cfg();
  cfg.pool_size = 1;
  auto p = stop_later(spawn_db_pool(*sys_, cfg, metrics_));
  auto one = [] {
    return read([](pqxx::work& tx) { return nlohmann::json(tx.exec1("SELECT 1")[0].as<int>()); });
  };
  ASSERT_TRUE(ask(*sys_, p, exec_atom::value, one()).ok);
  EXPECT_EQ(test::sql_value(test::admin_url(),
                            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                            "WHERE application_name = 'parley-pool' AND datname = '" +
                                db_->name() + "'"),
            "1");
  auto r = ask(*sys_, p, exec_atom::value, one());
  EXPECT_TRUE(r.ok) << r;
}

} // namespace
} // namespace parley::persistence
