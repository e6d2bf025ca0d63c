#include "persistence/connection.hpp"

#include <gtest/gtest.h>

#include "pg_support.hpp"

namespace parley::persistence {
namespace {

TEST(ConnectionString, AddsTimeoutsAndNameToUri) {
  connection_options o;
  o.connect_timeout_ms = 2500;
  o.statement_timeout_ms = 700;
  o.application_name = "parley-writer";
  auto s = connection_string("postgresql://u:p@db.example:5432/parley", o);
  EXPECT_EQ(s.rfind("postgresql://u:p@db.example:5432/parley?", 0), 0u) << s;
  EXPECT_NE(s.find("connect_timeout=3"), std::string::npos) << s; // rounded up to seconds
  EXPECT_NE(s.find("application_name=parley-writer"), std::string::npos) << s;
  EXPECT_NE(s.find("options=-c%20statement_timeout%3D700"), std::string::npos) << s;
  EXPECT_NE(s.find("keepalives=1"), std::string::npos) << s;
}

TEST(ConnectionString, KeysInTheUrlWin) {
  auto s = connection_string("postgresql://h/db?connect_timeout=9&sslmode=disable", {});
  EXPECT_NE(s.find("connect_timeout=9"), std::string::npos) << s;
  EXPECT_EQ(s.find("connect_timeout=3"), std::string::npos) << s;
  EXPECT_NE(s.find("sslmode=disable"), std::string::npos) << s;
}

TEST(ConnectionString, MergesIntoExistingOptions) {
  auto s = connection_string("postgresql://h/db?options=-c%20search_path%3Dx", {});
  EXPECT_NE(s.find("options=-c%20search_path%3Dx%20-c%20statement_timeout%3D5000"),
            std::string::npos)
      << s;
}

TEST(ConnectionString, KeyValueForm) {
  auto s = connection_string("host=h dbname=parley", {});
  EXPECT_NE(s.find(" connect_timeout='3'"), std::string::npos) << s;
  EXPECT_NE(s.find(" options='-c statement_timeout=5000'"), std::string::npos) << s;
  auto t = connection_string("host=h connect_timeout=8", {});
  EXPECT_EQ(t.find("connect_timeout='3'"), std::string::npos) << t;
}

TEST(ConnectionString, WriterSessionsPlanWithIndexesOnly) {
  // Regression: a writer's prepared statements kept a generic plan made while the tables were
  // small (hash join over a sequential scan) as they grew to hundreds of thousands of rows.
  connection_options o;
  o.index_plans_only = true;
  auto s = connection_string("postgresql://h/db", o);
  for (const char* setting :
       {"enable_seqscan%3Doff", "enable_hashjoin%3Doff", "enable_mergejoin%3Doff"})
    EXPECT_NE(s.find(setting), std::string::npos) << s;
  EXPECT_NE(s.find("statement_timeout%3D5000"), std::string::npos) << s;
  EXPECT_EQ(connection_string("postgresql://h/db", {}).find("enable_hashjoin"), std::string::npos);
}

TEST(WithDatabase, ReplacesOnlyTheDatabase) {
  EXPECT_EQ(with_database("postgresql://u:p@h:1/postgres?sslmode=disable", "scratch"),
            "postgresql://u:p@h:1/scratch?sslmode=disable");
  EXPECT_EQ(with_database("postgres://h", "a b"), "postgres://h/a%20b");
  EXPECT_EQ(with_database("host=h dbname=x", "y"), "host=h dbname=x dbname='y'");
}

TEST(Scrub, RemovesPasswords) {
  EXPECT_EQ(scrub("cannot reach postgresql://alice:hunter2@db:5432/p"),
            "cannot reach postgresql://alice:***@db:5432/p");
  EXPECT_EQ(scrub("host=db password=hunter2 user=alice"), "host=db password=*** user=alice");
  EXPECT_EQ(scrub("host=db password='a b' user=alice"), "host=db password=*** user=alice");
  // Any echo of the configured password goes, even outside a recognisable pattern.
  EXPECT_EQ(scrub("bad token near \"s3cr%t\"", "postgresql://u:s3cr%25t@h/db"),
            "bad token near \"***\"");
  EXPECT_EQ(scrub("nothing secret here", "postgresql://u@h/db"), "nothing secret here");
}

class ConnectionTest : public test::pg_test {};

TEST_F(ConnectionTest, SettingsReachTheServer) {
  connection_options o;
  o.statement_timeout_ms = 1234;
  o.application_name = "parley-test";
  auto c = connect(db_->url(), o);
  pqxx::nontransaction tx{*c};
  EXPECT_EQ(tx.exec1("SHOW statement_timeout")[0].as<std::string>(), "1234ms");
  EXPECT_EQ(tx.exec1("SHOW application_name")[0].as<std::string>(), "parley-test");
}

TEST_F(ConnectionTest, FailureTextHasNoPassword) {
  auto url = "postgresql://postgres:s3cret@127.0.0.1:" + std::to_string(test::closed_port()) + "/x";
  try {
    connect(url, {});
    FAIL() << "connected to a closed port";
  } catch (const pqxx::broken_connection& e) {
    EXPECT_EQ(std::string{e.what()}.find("s3cret"), std::string::npos) << e.what();
  }
}

} // namespace
} // namespace parley::persistence
