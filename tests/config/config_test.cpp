#include "config/config.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace parley::config;

namespace {

const std::string master_key = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
const std::string admin_token = "admin-token-0123456789";

// The smallest environment that passes validation.
env_map required_env() {
  return {
      {"PARLEY_DB_URL", "postgresql://parley:dbpass@127.0.0.1:5432/parley"},
      {"PARLEY_ADMIN_TOKEN", admin_token},
      {"PARLEY_MASTER_KEY", master_key},
  };
}

env_map with(env_map env, std::initializer_list<std::pair<const std::string, std::string>> extra) {
  for (const auto& [k, v] : extra)
    env[k] = v;
  return env;
}

env_map without(env_map env, const std::string& name) {
  env.erase(name);
  return env;
}

// Parses and expects a config_error naming `key`, whose text contains every fragment.
void expect_error(const std::string& json_text, const env_map& env, const std::string& key,
                  std::initializer_list<std::string> fragments = {}) {
  try {
    parse(json_text, env);
    ADD_FAILURE() << "expected config_error for " << key;
  } catch (const config_error& e) {
    EXPECT_EQ(e.key, key) << e.what();
    std::string what = e.what();
    EXPECT_EQ(what.rfind(key + ": ", 0), 0u) << what;
    for (const auto& f : fragments)
      EXPECT_NE(what.find(f), std::string::npos) << "'" << f << "' not in: " << what;
  }
}

} // namespace

TEST(config, defaults) {
  auto cfg = parse("", required_env());
  EXPECT_EQ(cfg.http.address, "127.0.0.1");
  EXPECT_EQ(cfg.http.port, 8080);
  EXPECT_EQ(cfg.http.io_threads, 1);
  EXPECT_EQ(cfg.http.body_limit, size_t{1} << 20);
  EXPECT_EQ(cfg.http.header_limit, 16u * 1024);
  EXPECT_EQ(cfg.http.max_event_streams_per_tenant, 100);
  EXPECT_EQ(cfg.http.event_stream_recheck_s, 60);
  EXPECT_EQ(cfg.db.pool_size, 4);
  EXPECT_EQ(cfg.db.batch_max_rows, 1000);
  EXPECT_EQ(cfg.redis.url, "");
  EXPECT_EQ(cfg.whatsapp.graph_base_url, "https://graph.facebook.com");
  EXPECT_EQ(cfg.whatsapp.graph_version, "v21.0");
  EXPECT_EQ(cfg.log.level, "info");
  EXPECT_EQ(cfg.runtime.scheduler_threads, 2);
  EXPECT_EQ(cfg.runtime.scheduler_moderate_polls, 0);
  EXPECT_EQ(cfg.retention.raw_event_days, 30);
  EXPECT_EQ(cfg.ingest.max_in_flight, 2048);
  EXPECT_EQ(cfg.ingest.max_queued_mb, 64);
  EXPECT_EQ(cfg.ingest.batch_interval_ms, 20);
  EXPECT_EQ(cfg.ingest.batch_max_rows, 2000);
  EXPECT_EQ(cfg.security.master_key, master_key);
  EXPECT_EQ(cfg.admin.token, admin_token);
}

TEST(config, whitespace_only_file_means_defaults) {
  EXPECT_EQ(parse(" \n\t ", required_env()).http.port, 8080);
}

TEST(config, file_values_are_applied) {
  auto cfg = parse(R"({
    // comments are allowed
    "http": {"address": "0.0.0.0", "port": 9000, "io_threads": 4, "body_limit": 2048},
    "db": {"pool_size": 8, "batch_max_delay_ms": 0},
    "redis": {"url": "redis://127.0.0.1:6379"},
    "whatsapp": {"app_secret": "s3cret", "verify_token": "vt", "graph_base_url": "http://127.0.0.1:1"},
    "log": {"level": "debug"},
    "runtime": {"supervisor_max_restarts": 0}
  })",
                   required_env());
  EXPECT_EQ(cfg.http.address, "0.0.0.0");
  EXPECT_EQ(cfg.http.port, 9000);
  EXPECT_EQ(cfg.http.io_threads, 4);
  EXPECT_EQ(cfg.http.body_limit, 2048u);
  EXPECT_EQ(cfg.db.pool_size, 8);
  EXPECT_EQ(cfg.db.batch_max_delay_ms, 0);
  EXPECT_EQ(cfg.redis.url, "redis://127.0.0.1:6379");
  EXPECT_EQ(cfg.whatsapp.app_secret, "s3cret");
  EXPECT_EQ(cfg.whatsapp.verify_token, "vt");
  EXPECT_EQ(cfg.whatsapp.graph_base_url, "http://127.0.0.1:1");
  EXPECT_EQ(cfg.log.level, "debug");
  EXPECT_EQ(cfg.runtime.supervisor_max_restarts, 0);
}

TEST(config, secrets_can_come_from_the_file) {
  auto cfg = parse(R"({"db": {"url": "postgresql://x@h/db"}, "admin": {"token": ")" + admin_token +
                       R"("}, "security": {"master_key": ")" + master_key + R"("}})",
                   {});
  EXPECT_EQ(cfg.db.url, "postgresql://x@h/db");
  EXPECT_EQ(cfg.admin.token, admin_token);
}

TEST(config, environment_overrides_file) {
  auto env = with(required_env(), {{"PARLEY_HTTP_PORT", "7000"},
                                   {"PARLEY_HTTP_ADDRESS", "10.0.0.1"},
                                   {"PARLEY_LOG_LEVEL", "warn"},
                                   {"PARLEY_REDIS_URL", "redis://r:1"},
                                   {"PARLEY_WHATSAPP_APP_SECRET", "from-env"},
                                   {"PARLEY_WHATSAPP_VERIFY_TOKEN", "vt-env"},
                                   {"PARLEY_DB_POOL_SIZE", "3"},
                                   {"PARLEY_RUNTIME_CONVERSATION_IDLE_TIMEOUT_S", "60"},
                                   {"PARLEY_RUNTIME_TENANT_SWEEP_INTERVAL_S", "600"},
                                   {"PARLEY_RUNTIME_TENANT_SWEEP_HORIZON_H", "2"},
                                   {"PARLEY_RETENTION_RAW_EVENT_DAYS", "0"},
                                   {"PARLEY_HTTP_MAX_EVENT_STREAMS_PER_TENANT", "7"},
                                   {"PARLEY_HTTP_EVENT_STREAM_RECHECK_S", "2"}});
  auto cfg = parse(R"({"http": {"port": 9000, "address": "0.0.0.0"}, "log": {"level": "debug"},
                       "db": {"url": "postgresql://file/db", "pool_size": 9},
                       "whatsapp": {"app_secret": "from-file"}})",
                   env);
  EXPECT_EQ(cfg.http.port, 7000);
  EXPECT_EQ(cfg.http.address, "10.0.0.1");
  EXPECT_EQ(cfg.log.level, "warn");
  EXPECT_EQ(cfg.redis.url, "redis://r:1");
  EXPECT_EQ(cfg.db.url, "postgresql://parley:dbpass@127.0.0.1:5432/parley");
  EXPECT_EQ(cfg.db.pool_size, 3);
  EXPECT_EQ(cfg.whatsapp.app_secret, "from-env");
  EXPECT_EQ(cfg.whatsapp.verify_token, "vt-env");
  EXPECT_EQ(cfg.runtime.conversation_idle_timeout_s, 60);
  EXPECT_EQ(cfg.runtime.tenant_sweep_interval_s, 600);
  EXPECT_EQ(cfg.runtime.tenant_sweep_horizon_h, 2);
  EXPECT_EQ(cfg.retention.raw_event_days, 0);
  EXPECT_EQ(cfg.http.max_event_streams_per_tenant, 7);
  EXPECT_EQ(cfg.http.event_stream_recheck_s, 2);
}

TEST(config, master_key_canonical_name_and_alias) {
  auto env = with(without(required_env(), "PARLEY_MASTER_KEY"),
                  {{"PARLEY_SECURITY_MASTER_KEY", master_key}});
  EXPECT_EQ(parse("", env).security.master_key, master_key);
  // Both set to the same value is fine; different values are ambiguous.
  EXPECT_NO_THROW(parse("", with(env, {{"PARLEY_MASTER_KEY", master_key}})));
  expect_error("", with(env, {{"PARLEY_MASTER_KEY", std::string(64, 'a')}}), "security.master_key",
               {"PARLEY_MASTER_KEY", "PARLEY_SECURITY_MASTER_KEY", "differ"});
}

TEST(config, script_variables_are_ignored) {
  auto env = with(required_env(), {{"PARLEY_TEST_PG_URL", "x"},
                                   {"PARLEY_BENCH_SECONDS", "x"},
                                   {"PARLEY_PG_PORT", "x"},
                                   {"PARLEY_REDIS_PORT", "x"},
                                   {"PARLEY_DEMO_TENANT", "x"},
                                   {"PARLEY_CONFIG", "/etc/parley.json"},
                                   {"HOME", "/root"}});
  EXPECT_NO_THROW(parse("", env));
}

TEST(config, unknown_environment_variable_is_rejected) {
  expect_error("", with(required_env(), {{"PARLEY_HTTP_PROT", "1"}}), "PARLEY_HTTP_PROT",
               {"unknown environment variable", "PARLEY_HTTP_PORT?"});
  expect_error("", with(required_env(), {{"PARLEY_NOPE", "1"}}), "PARLEY_NOPE", {"PARLEY_DB_URL"});
}

TEST(config, bad_environment_values_name_the_variable) {
  expect_error("", with(required_env(), {{"PARLEY_HTTP_PORT", "abc"}}), "http.port",
               {"PARLEY_HTTP_PORT", "expected an integer 0..65535", "got \"abc\""});
  expect_error("", with(required_env(), {{"PARLEY_HTTP_PORT", "70000"}}), "http.port",
               {"PARLEY_HTTP_PORT", "70000"});
  expect_error("", with(required_env(), {{"PARLEY_HTTP_PORT", ""}}), "http.port",
               {"PARLEY_HTTP_PORT"});
  expect_error("", with(required_env(), {{"PARLEY_HTTP_PORT", "80 "}}), "http.port",
               {"PARLEY_HTTP_PORT"});
  expect_error("", with(required_env(), {{"PARLEY_HTTP_IO_THREADS", "0"}}), "http.io_threads",
               {"PARLEY_HTTP_IO_THREADS", "1..64"});
  expect_error("", with(required_env(), {{"PARLEY_LOG_LEVEL", "verbose"}}), "log.level",
               {"PARLEY_LOG_LEVEL", "trace|debug|info|warn|error|off", "verbose"});
  expect_error("", with(required_env(), {{"PARLEY_REDIS_URL", "localhost:6379"}}), "redis.url",
               {"PARLEY_REDIS_URL", "redis://host:port"});
}

TEST(config, cors_origins_are_checked) {
  auto ok =
      parse("", with(required_env(), {{"PARLEY_HTTP_CORS_ALLOWED_ORIGINS",
                                       "https://console.example.com, http://localhost:3000"}}));
  EXPECT_EQ(ok.http.cors_allowed_origins, "https://console.example.com, http://localhost:3000");
  EXPECT_EQ(parse("", with(required_env(), {{"PARLEY_HTTP_CORS_ALLOWED_ORIGINS", "*"}}))
                .http.cors_allowed_origins,
            "*");
  for (const char* bad : {"console.example.com", "https://console.example.com/",
                          "https://c.example/app", "ftp://c.example", "https://c.example:port"})
    expect_error("", with(required_env(), {{"PARLEY_HTTP_CORS_ALLOWED_ORIGINS", bad}}),
                 "http.cors_allowed_origins", {"PARLEY_HTTP_CORS_ALLOWED_ORIGINS", bad});
}

TEST(config, unknown_section_and_key_are_rejected) {
  expect_error(R"({"htp": {}})", required_env(), "htp", {"unknown section", "http, db", "http?"});
  expect_error(R"({"http": {"prot": 1}})", required_env(), "http.prot",
               {"unknown key; known keys: address, port, io_threads", "port?"});
  expect_error(R"({"keys": {}})", required_env(), "keys", {"unknown section"});
}

TEST(config, wrong_types_and_ranges_name_the_key) {
  expect_error(R"({"http": {"port": "abc"}})", required_env(), "http.port",
               {"expected an integer 0..65535, got \"abc\""});
  expect_error(R"({"http": {"port": 65536}})", required_env(), "http.port", {"got 65536"});
  expect_error(R"({"http": {"port": -1}})", required_env(), "http.port", {"got -1"});
  expect_error(R"({"http": {"port": 80.5}})", required_env(), "http.port", {"got 80.5"});
  expect_error(R"({"http": {"port": true}})", required_env(), "http.port", {"got true"});
  expect_error(R"({"http": {"port": null}})", required_env(), "http.port", {"got null"});
  expect_error(R"({"http": {"port": 18446744073709551615}})", required_env(), "http.port");
  expect_error(R"({"http": {"address": 5}})", required_env(), "http.address",
               {"expected a string, got 5"});
  expect_error(R"({"http": {"io_threads": 65}})", required_env(), "http.io_threads", {"1..64"});
  expect_error(R"({"http": {"body_limit": 0}})", required_env(), "http.body_limit");
  expect_error(R"({"http": {"read_timeout_ms": 0}})", required_env(), "http.read_timeout_ms");
  expect_error(R"({"http": {"idle_timeout_ms": -5}})", required_env(), "http.idle_timeout_ms");
  expect_error(R"({"db": {"pool_size": 0}})", required_env(), "db.pool_size");
  expect_error(R"({"db": {"writers": 0}})", required_env(), "db.writers");
  expect_error(R"({"db": {"statement_timeout_ms": 0}})", required_env(), "db.statement_timeout_ms");
  expect_error(R"({"runtime": {"scheduler_threads": 0}})", required_env(),
               "runtime.scheduler_threads");
  expect_error(R"({"runtime": {"tenant_sweep_interval_s": 0}})", required_env(),
               "runtime.tenant_sweep_interval_s", {"1..86400"});
  expect_error(R"({"runtime": {"tenant_sweep_horizon_h": 721}})", required_env(),
               "runtime.tenant_sweep_horizon_h", {"1..720"});
  expect_error(R"({"retention": {"raw_event_days": -1}})", required_env(),
               "retention.raw_event_days", {"0..3650"});
  expect_error(R"({"ingest": {"max_in_flight": 0}})", required_env(), "ingest.max_in_flight",
               {"1..1000000"});
  expect_error(R"({"http": 5})", required_env(), "http", {"expected an object"});
  expect_error(R"({"log": {"level": "loud"}})", required_env(), "log.level", {"loud"});
  expect_error(R"({"whatsapp": {"graph_base_url": "ftp://x"}})", required_env(),
               "whatsapp.graph_base_url", {"http:// or https://"});
  expect_error(R"({"whatsapp": {"graph_version": ""}})", required_env(), "whatsapp.graph_version");
  expect_error(R"({"http": {"address": ""}})", required_env(), "http.address");
}

TEST(config, malformed_json_is_rejected) {
  expect_error("{\"http\": ", required_env(), "--config", {"invalid JSON"});
  expect_error("[1, 2]", required_env(), "--config", {"expected a JSON object"});
}

TEST(config, required_values) {
  expect_error("", without(required_env(), "PARLEY_DB_URL"), "db.url",
               {"required", "PARLEY_DB_URL"});
  expect_error("", without(required_env(), "PARLEY_ADMIN_TOKEN"), "admin.token",
               {"required", "PARLEY_ADMIN_TOKEN", "16"});
  expect_error("", without(required_env(), "PARLEY_MASTER_KEY"), "security.master_key",
               {"required", "PARLEY_MASTER_KEY", "openssl rand -hex 32"});
}

TEST(config, secret_checks_never_echo_the_secret) {
  expect_error("", with(required_env(), {{"PARLEY_ADMIN_TOKEN", "short-tok"}}), "admin.token",
               {"at least 16 characters", "got 9", "PARLEY_ADMIN_TOKEN"});
  expect_error("", with(required_env(), {{"PARLEY_MASTER_KEY", "abcd"}}), "security.master_key",
               {"64 hex", "got 4", "openssl rand -hex 32"});
  expect_error("", with(required_env(), {{"PARLEY_MASTER_KEY", std::string(63, 'a') + "g"}}),
               "security.master_key", {"non-hex"});
  expect_error(R"({"admin": {"token": 1234567890123456789}})", required_env(), "admin.token",
               {"expected a string, got number"});
  for (const auto& [env, value] : std::initializer_list<std::pair<std::string, std::string>>{
           {"PARLEY_ADMIN_TOKEN", "short-tok"}, {"PARLEY_MASTER_KEY", "zzzzzz-not-hex"}}) {
    try {
      parse("", with(required_env(), {{env, value}}));
      ADD_FAILURE();
    } catch (const config_error& e) {
      EXPECT_EQ(std::string(e.what()).find(value), std::string::npos) << e.what();
    }
  }
}

TEST(config, redaction_hides_every_secret) {
  auto env = with(required_env(), {{"PARLEY_WHATSAPP_APP_SECRET", "app-secret-value"},
                                   {"PARLEY_WHATSAPP_VERIFY_TOKEN", "verify-token-value"},
                                   {"PARLEY_REDIS_URL", "redis://:redispass@127.0.0.1:6379"}});
  auto cfg = parse("", env);
  auto text = redacted_json(cfg);
  for (const auto& secret :
       {std::string("dbpass"), admin_token, master_key, std::string("app-secret-value"),
        std::string("verify-token-value"), std::string("redispass")})
    EXPECT_EQ(text.find(secret), std::string::npos) << secret << " leaked in " << text;

  auto doc = nlohmann::json::parse(text);
  EXPECT_EQ(doc["admin"]["token"], "***");
  EXPECT_EQ(doc["security"]["master_key"], "***");
  EXPECT_EQ(doc["whatsapp"]["app_secret"], "***");
  EXPECT_EQ(doc["whatsapp"]["verify_token"], "***");
  EXPECT_EQ(doc["db"]["url"], "postgresql://parley:***@127.0.0.1:5432/parley");
  EXPECT_EQ(doc["redis"]["url"], "redis://:***@127.0.0.1:6379");
  EXPECT_EQ(doc["http"]["port"], 8080);
  EXPECT_EQ(doc["log"]["level"], "info");
}

TEST(config, redaction_of_other_url_forms) {
  auto redacted_db = [](const std::string& url) {
    auto cfg = parse("", with(required_env(), {{"PARLEY_DB_URL", url}}));
    return nlohmann::json::parse(redacted_json(cfg))["db"]["url"].get<std::string>();
  };
  EXPECT_EQ(redacted_db("postgresql://u@h/db"), "postgresql://u@h/db");
  EXPECT_EQ(redacted_db("postgresql://h/db?user=u&password=pw&sslmode=disable"),
            "postgresql://h/db?user=u&password=***&sslmode=disable");
  EXPECT_EQ(redacted_db("host=h user=u password=pw dbname=d"),
            "host=h user=u password=*** dbname=d");
  EXPECT_EQ(redacted_db("host=h password = 'p w' dbname=d"), "host=h password = *** dbname=d");
  EXPECT_EQ(redacted_db("postgresql://u:p@ss@h/db"), "postgresql://u:***@h/db");
  EXPECT_EQ(redacted_db(R"(host=h password='a\'b c' dbname=d)"), "host=h password=*** dbname=d");
}

TEST(config, redacted_json_round_trips_non_secret_values) {
  auto cfg =
      parse(R"({"http": {"port": 1234}, "runtime": {"supervisor_window_s": 7}})", required_env());
  auto doc = nlohmann::json::parse(redacted_json(cfg));
  EXPECT_EQ(doc["http"]["port"], 1234);
  EXPECT_EQ(doc["runtime"]["supervisor_window_s"], 7);
  // Every section of the struct is present, so --print-config documents the full shape.
  for (const char* s : {"http", "db", "redis", "admin", "whatsapp", "security", "log", "runtime"})
    EXPECT_TRUE(doc.contains(s)) << s;
}

TEST(config, load_reads_a_file) {
  auto path = std::filesystem::temp_directory_path() /
              ("parley-config-test-" + std::to_string(::getpid()) + ".json");
  {
    std::ofstream out(path);
    out << R"({"http": {"port": 4321}})";
  }
  auto cfg = load(path.string(), required_env());
  EXPECT_EQ(cfg.http.port, 4321);
  std::filesystem::remove(path);
  EXPECT_EQ(load(std::nullopt, required_env()).http.port, 8080);
  try {
    load(path.string(), required_env());
    ADD_FAILURE();
  } catch (const config_error& e) {
    EXPECT_EQ(e.key, "--config");
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos);
  }
}

TEST(config, environment_reads_only_parley_variables) {
  ::setenv("PARLEY_TEST_CONFIG_PROBE", "a=b", 1);
  ::setenv("NOT_PARLEY_CONFIG_PROBE", "x", 1);
  auto env = environment();
  ::unsetenv("PARLEY_TEST_CONFIG_PROBE");
  ::unsetenv("NOT_PARLEY_CONFIG_PROBE");
  ASSERT_EQ(env.count("PARLEY_TEST_CONFIG_PROBE"), 1u);
  EXPECT_EQ(env["PARLEY_TEST_CONFIG_PROBE"], "a=b");
  EXPECT_EQ(env.count("NOT_PARLEY_CONFIG_PROBE"), 0u);
  for (const auto& [k, v] : env)
    EXPECT_EQ(k.rfind("PARLEY_", 0), 0u) << k;
}

TEST(config, security_defaults) {
  auto cfg = parse("", required_env());
  EXPECT_EQ(cfg.security.master_key_version, 1);
  EXPECT_EQ(cfg.security.access_token_ttl_s, 900);
  EXPECT_EQ(cfg.security.refresh_token_ttl_s, 30 * 86400);
  EXPECT_EQ(cfg.security.login_max_failures, 5);
  EXPECT_EQ(cfg.security.password_scrypt_log_n, 15);
  EXPECT_TRUE(cfg.security.jwt_secret.empty());
  EXPECT_TRUE(previous_master_keys(cfg.security).empty());
}

TEST(config, previous_master_keys) {
  const std::string old1(64, 'a'), old2(64, 'B');
  auto cfg =
      parse("", with(required_env(),
                     {{"PARLEY_SECURITY_MASTER_KEY_VERSION", "3"},
                      {"PARLEY_SECURITY_PREVIOUS_MASTER_KEYS", "v1:" + old1 + ", 2:" + old2}}));
  auto prev = previous_master_keys(cfg.security);
  ASSERT_EQ(prev.size(), 2u);
  EXPECT_EQ(prev[1], old1);
  EXPECT_EQ(prev[2], old2);
  // Bad entries name the key and never echo the secret.
  for (const std::string& bad : {"v1:" + std::string(63, 'a'), "v1" + old1, "vx:" + old1,
                                 "v1:" + old1 + ",v1:" + old2, "v3:" + old1})
    expect_error("",
                 with(required_env(), {{"PARLEY_SECURITY_MASTER_KEY_VERSION", "3"},
                                       {"PARLEY_SECURITY_PREVIOUS_MASTER_KEYS", bad}}),
                 "security.previous_master_keys");
  try {
    parse("", with(required_env(), {{"PARLEY_SECURITY_PREVIOUS_MASTER_KEYS", "v7:" + old1 + "x"}}));
    ADD_FAILURE() << "expected config_error";
  } catch (const config_error& e) {
    EXPECT_EQ(std::string(e.what()).find(old1), std::string::npos) << e.what();
  }
}

TEST(config, jwt_secret_and_lockout) {
  expect_error("", with(required_env(), {{"PARLEY_SECURITY_JWT_SECRET", "short"}}),
               "security.jwt_secret", {"32"});
  EXPECT_NO_THROW(
      parse("", with(required_env(), {{"PARLEY_SECURITY_JWT_SECRET", std::string(32, 'j')}})));
  expect_error("",
               with(required_env(), {{"PARLEY_SECURITY_LOGIN_LOCKOUT_MAX_S", "10"},
                                     {"PARLEY_SECURITY_LOGIN_LOCKOUT_BASE_S", "60"}}),
               "security.login_lockout_max_s");
  expect_error("", with(required_env(), {{"PARLEY_SECURITY_PASSWORD_SCRYPT_LOG_N", "9"}}),
               "security.password_scrypt_log_n");
  auto doc = nlohmann::json::parse(redacted_json(
      parse("", with(required_env(), {{"PARLEY_SECURITY_JWT_SECRET", std::string(40, 'j')}}))));
  EXPECT_EQ(doc["security"]["jwt_secret"], "***");
}
TEST(config, isolation_and_rate_limit_keys) {
  auto cfg =
      parse(R"({"db": {"allow_rls_bypass": true, "migrate_url": "postgresql://owner:pw@h/db"},
                       "ratelimit": {"enabled": false, "ip_failure_burst": 7},
                       "http": {"trusted_proxies": "10.0.0.1"}})",
            required_env());
  EXPECT_TRUE(cfg.db.allow_rls_bypass);
  EXPECT_EQ(cfg.db.migrate_url, "postgresql://owner:pw@h/db");
  EXPECT_FALSE(cfg.ratelimit.enabled);
  EXPECT_EQ(cfg.ratelimit.ip_failure_burst, 7);
  EXPECT_EQ(cfg.http.trusted_proxies, "10.0.0.1");
  auto doc = nlohmann::json::parse(redacted_json(cfg));
  EXPECT_EQ(doc["db"]["migrate_url"], "postgresql://owner:***@h/db");
  EXPECT_EQ(doc["db"]["allow_rls_bypass"], true);

  // Defaults: refuse a bypassing role; limits on.
  auto dflt = parse("", required_env());
  EXPECT_FALSE(dflt.db.allow_rls_bypass);
  EXPECT_TRUE(dflt.ratelimit.enabled);

  // Booleans from the environment: true/false/1/0, anything else names the key.
  EXPECT_TRUE(
      parse("", with(required_env(), {{"PARLEY_DB_ALLOW_RLS_BYPASS", "1"}})).db.allow_rls_bypass);
  EXPECT_FALSE(
      parse("", with(required_env(), {{"PARLEY_RATELIMIT_ENABLED", "false"}})).ratelimit.enabled);
  try {
    parse("", with(required_env(), {{"PARLEY_DB_ALLOW_RLS_BYPASS", "yes"}}));
    ADD_FAILURE();
  } catch (const config_error& e) {
    EXPECT_EQ(e.key, "db.allow_rls_bypass");
    EXPECT_NE(std::string(e.what()).find("true or false"), std::string::npos) << e.what();
  }
  try {
    parse(R"({"db": {"allow_rls_bypass": 1}})", required_env());
    ADD_FAILURE();
  } catch (const config_error& e) {
    EXPECT_EQ(e.key, "db.allow_rls_bypass");
  }
  try {
    parse(R"({"ratelimit": {"ip_failure_burst": 0}})", required_env());
    ADD_FAILURE();
  } catch (const config_error& e) {
    EXPECT_EQ(e.key, "ratelimit.ip_failure_burst");
  }
}
