#include "persistence/migrations.hpp"

#include "persistence/isolation_check.hpp"

#include <thread>

#include <gtest/gtest.h>

#include "pg_support.hpp"

namespace parley::persistence {
namespace {

class MigrationsTest : public test::pg_test {
protected:
  int applied_rows() {
    return std::stoi(test::sql_value(db_->url(), "SELECT count(*) FROM schema_migrations"));
  }
};

TEST(EmbeddedMigrations, AreSortedAndStartWithThePlatform) {
  const auto& all = embedded_migrations();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all[0].version, 1);
  EXPECT_EQ(all[0].name, "platform");
  EXPECT_NE(all[0].sql.find("CREATE TABLE tenants"), std::string::npos);
  for (size_t i = 1; i < all.size(); ++i)
    EXPECT_LT(all[i - 1].version, all[i].version);
}

TEST_F(MigrationsTest, AppliesOnceThenNothing) {
  auto n = static_cast<int>(embedded_migrations().size());
  EXPECT_EQ(migrate(db_->url()), n);
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT to_regclass('tenants') IS NOT NULL"), "t");
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT name FROM schema_migrations WHERE version = 1"),
            "platform");
  EXPECT_EQ(migrate(db_->url()), 0);
  EXPECT_EQ(applied_rows(), n);
}

TEST_F(MigrationsTest, ConcurrentRunsApplyEachMigrationOnce) {
  auto n = static_cast<int>(embedded_migrations().size());
  constexpr int runners = 4;
  std::vector<int> applied(runners, -1);
  std::vector<std::string> errors(runners);
  std::vector<std::thread> threads;
  for (int i = 0; i < runners; ++i)
    threads.emplace_back([&, i, url = db_->url()] {
      try {
        applied[i] = migrate(url);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& t : threads)
    t.join();
  int total = 0;
  for (int i = 0; i < runners; ++i) {
    EXPECT_EQ(errors[i], "") << "runner " << i;
    total += applied[i];
  }
  EXPECT_EQ(total, n);
  EXPECT_EQ(applied_rows(), n);
}

TEST_F(MigrationsTest, FailureNamesTheMigrationAndKeepsEarlierOnes) {
  std::vector<migration> list{
      {1, "first", "CREATE TABLE first_table (x int)"},
      {2, "broken", "CREATE TABLE half_done (x int); SELECT 1/0"},
      {3, "third", "CREATE TABLE third_table (x int)"},
  };
  try {
    migrate(db_->url(), list);
    FAIL() << "a broken migration was applied";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string{e.what()}.find("0002_broken"), std::string::npos) << e.what();
  }
  EXPECT_EQ(
      test::sql_value(db_->url(), "SELECT string_agg(version::text, ',') FROM schema_migrations"),
      "1");
  // The failed migration ran in one transaction: nothing of it is left behind.
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT to_regclass('half_done') IS NULL"), "t");
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT to_regclass('third_table') IS NULL"), "t");
  // Fixed, the run continues where it stopped.
  list[1].sql = "CREATE TABLE half_done (x int)";
  EXPECT_EQ(migrate(db_->url(), list), 2);
}

TEST_F(MigrationsTest, UnreachableDatabaseThrowsWithoutCredentials) {
  auto url = "postgresql://postgres:s3cret@127.0.0.1:" + std::to_string(test::closed_port()) + "/x";
  try {
    migrate(url);
    FAIL() << "migrated a closed port";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string{e.what()}.find("s3cret"), std::string::npos) << e.what();
  }
}

TEST_F(MigrationsTest, EveryTenantTableEndsUnderRowLevelSecurity) {
  migrate(db_->url());
  auto report = inspect_isolation(db_->url());
  EXPECT_TRUE(report.unprotected_tables.empty());
  EXPECT_TRUE(report.superuser) << "the test connects as a superuser";
  EXPECT_TRUE(report.can_bypass());
  EXPECT_NE(report.bypass_reason().find("superuser"), std::string::npos);

  // A tenant table made outside migrations is reported...
  test::sql_value(db_->url(), "CREATE TABLE later_tenant_table (id int, tenant_id uuid); SELECT 1");
  report = inspect_isolation(db_->url());
  EXPECT_EQ(report.unprotected_tables, std::vector<std::string>{"later_tenant_table"});
  // ...and secured by the next migration run, as one that a later migration adds would be.
  migration later{9999, "later", "CREATE TABLE later_too (tenant_id uuid)"};
  auto all = embedded_migrations();
  all.push_back(later);
  EXPECT_EQ(migrate(db_->url(), all), 1);
  report = inspect_isolation(db_->url());
  EXPECT_TRUE(report.unprotected_tables.empty());
  EXPECT_EQ(test::sql_value(db_->url(), "SELECT relforcerowsecurity FROM pg_class "
                                        "WHERE relname = 'later_too'"),
            "t");
}

} // namespace
} // namespace parley::persistence
