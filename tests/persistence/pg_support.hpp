#pragma once
// Test support: scratch databases on the server named by PARLEY_TEST_PG_URL, an actor system
// sized for a 2-core machine, and small SQL helpers.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "config/config.hpp"
#include "persistence/connection.hpp"
#include "runtime/metrics.hpp"

namespace parley::test {

inline std::string admin_url() {
  const char* v = std::getenv("PARLEY_TEST_PG_URL");
  return v ? v : "";
}

/// A uniquely named database, dropped (connections and all) on destruction.
class scratch_db {
public:
  explicit scratch_db(std::string admin)
      : admin_(std::move(admin)) {
    std::random_device rd;
    name_ = "parley_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 1000000);
    pqxx::connection c{admin_};
    pqxx::nontransaction tx{c};
    tx.exec("CREATE DATABASE " + tx.quote_name(name_));
    url_ = persistence::with_database(admin_, name_);
  }
  ~scratch_db() {
    try {
      pqxx::connection c{admin_};
      pqxx::nontransaction tx{c};
      tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(name_) + " WITH (FORCE)");
    } catch (const std::exception& e) {
      ADD_FAILURE() << "could not drop scratch database " << name_ << ": " << e.what();
    }
  }
  scratch_db(const scratch_db&) = delete;
  scratch_db& operator=(const scratch_db&) = delete;

  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }

private:
  std::string admin_;
  std::string name_;
  std::string url_;
};

/// Runs `sql` on `url` in its own transaction and returns the first column of the first row
/// (or "" when there is none).
inline std::string sql_value(const std::string& url, const std::string& sql) {
  pqxx::connection c{url};
  pqxx::work tx{c};
  auto r = tx.exec(sql);
  tx.commit();
  if (r.empty() || r[0][0].is_null())
    return "";
  return r[0][0].c_str();
}

inline void sql_exec(const std::string& url, const std::string& sql) {
  pqxx::connection c{url};
  pqxx::work tx{c};
  tx.exec(sql);
  tx.commit();
}

/// A loopback port nothing listens on (bound, then released).
inline uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline caf::actor_system_config& small_config(caf::actor_system_config& cfg) {
  cfg.set("scheduler.max-threads", 2);
  return cfg;
}

/// Base fixture: a scratch database, an actor system and a metrics registry per test.
class pg_test : public ::testing::Test {
protected:
  void SetUp() override {
    if (admin_url().empty())
      GTEST_FAIL() << "PARLEY_TEST_PG_URL is not set. These integration tests need a PostgreSQL "
                      "superuser URL, e.g. postgresql://postgres@127.0.0.1:55432/postgres";
    db_ = std::make_unique<scratch_db>(admin_url());
    sys_ = std::make_unique<caf::actor_system>(small_config(cfg_));
  }

  void TearDown() override {
    for (auto& a : to_stop_)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    to_stop_.clear();
    sys_.reset();
    db_.reset();
  }

  /// Stops `a` at the end of the test (before the actor system goes away).
  caf::actor stop_later(caf::actor a) {
    to_stop_.push_back(a);
    return a;
  }

  config::db_config db_cfg() const {
    config::db_config c;
    c.url = db_->url();
    c.pool_size = 2;
    c.connect_timeout_ms = 2000;
    c.statement_timeout_ms = 5000;
    return c;
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<scratch_db> db_;
  metrics::registry metrics_; // outlives the actors that hold references into it
  std::unique_ptr<caf::actor_system> sys_;
  std::vector<caf::actor> to_stop_;
};

} // namespace parley::test
