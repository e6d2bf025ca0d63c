#include "config/config.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string_view>
#include <type_traits>
#include <unistd.h>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace parley::config {

namespace {

using nlohmann::json;

// One row per key. The table is the single source of truth for the file format, the environment
// names and --print-config, so the three can never drift apart.
using field_ref = std::variant<std::string*, int*, uint16_t*, size_t*, bool*>;

enum class secrecy { none, secret, url_with_password };

struct field_spec {
  std::string_view section;
  std::string_view key;
  field_ref (*ref)(parley_config&);
  long long min; // integers only
  long long max;
  secrecy kind;
};

constexpr long long day_ms = 24LL * 3600 * 1000;
constexpr long long any_string = 0;

// One field per line; the formatter would mangle the macro and the table.
// clang-format off
// The macro keeps the JSON key spelled exactly like the struct member.
#define PARLEY_FIELD(sec, name, lo, hi, secr)                                                      \
  field_spec {                                                                                     \
    #sec, #name, [](parley_config& c) -> field_ref { return &c.sec.name; }, lo, hi, secr           \
  }

constexpr std::array field_table = {
  PARLEY_FIELD(http, address, any_string, any_string, secrecy::none),
  PARLEY_FIELD(http, port, 0, 65535, secrecy::none),
  PARLEY_FIELD(http, io_threads, 1, 64, secrecy::none),
  PARLEY_FIELD(http, body_limit, 1, 1LL << 30, secrecy::none),
  PARLEY_FIELD(http, header_limit, 1, 1LL << 20, secrecy::none),
  PARLEY_FIELD(http, read_timeout_ms, 1, day_ms, secrecy::none),
  PARLEY_FIELD(http, idle_timeout_ms, 1, day_ms, secrecy::none),
  PARLEY_FIELD(http, request_timeout_ms, 1, day_ms, secrecy::none),
  PARLEY_FIELD(http, drain_timeout_ms, 1, day_ms, secrecy::none),
  PARLEY_FIELD(http, trusted_proxies, any_string, any_string, secrecy::none),
  PARLEY_FIELD(http, max_event_streams_per_tenant, 1, 100000, secrecy::none),
  PARLEY_FIELD(http, event_stream_recheck_s, 1, 86400, secrecy::none),
  PARLEY_FIELD(http, cors_allowed_origins, any_string, any_string, secrecy::none),
  PARLEY_FIELD(db, url, any_string, any_string, secrecy::url_with_password),
  PARLEY_FIELD(db, pool_size, 1, 256, secrecy::none),
  PARLEY_FIELD(db, batch_max_rows, 1, 100000, secrecy::none),
  // 0 is allowed: flush as soon as the writer is idle, trading batching for latency.
  PARLEY_FIELD(db, batch_max_delay_ms, 0, 60000, secrecy::none),
  PARLEY_FIELD(db, writers, 1, 64, secrecy::none),
  PARLEY_FIELD(db, connect_timeout_ms, 1, day_ms, secrecy::none),
  PARLEY_FIELD(db, statement_timeout_ms, 1, day_ms, secrecy::none),
  PARLEY_FIELD(db, reconnect_max_backoff_ms, 1, day_ms, secrecy::none),
  PARLEY_FIELD(db, request_timeout_ms, 1, day_ms, secrecy::none),
  PARLEY_FIELD(db, migrate_url, any_string, any_string, secrecy::url_with_password),
  PARLEY_FIELD(db, allow_rls_bypass, 0, 1, secrecy::none),
  PARLEY_FIELD(redis, url, any_string, any_string, secrecy::url_with_password),
  PARLEY_FIELD(ratelimit, enabled, 0, 1, secrecy::none),
  PARLEY_FIELD(ratelimit, ip_failures_per_minute, 1, 1000000, secrecy::none),
  PARLEY_FIELD(ratelimit, ip_failure_burst, 1, 1000000, secrecy::none),
  PARLEY_FIELD(ratelimit, max_keys, 1, 100000000, secrecy::none),
  PARLEY_FIELD(ratelimit, redis_timeout_ms, 1, 60000, secrecy::none),
  PARLEY_FIELD(admin, token, any_string, any_string, secrecy::secret),
  PARLEY_FIELD(whatsapp, app_secret, any_string, any_string, secrecy::secret),
  PARLEY_FIELD(whatsapp, verify_token, any_string, any_string, secrecy::secret),
  PARLEY_FIELD(whatsapp, graph_base_url, any_string, any_string, secrecy::none),
  PARLEY_FIELD(whatsapp, graph_version, any_string, any_string, secrecy::none),
  PARLEY_FIELD(whatsapp, graph_ca_file, any_string, any_string, secrecy::none),
  PARLEY_FIELD(security, master_key, any_string, any_string, secrecy::secret),
  PARLEY_FIELD(security, master_key_version, 1, 1000000, secrecy::none),
  PARLEY_FIELD(security, previous_master_keys, any_string, any_string, secrecy::secret),
  PARLEY_FIELD(security, jwt_secret, any_string, any_string, secrecy::secret),
  PARLEY_FIELD(security, access_token_ttl_s, 60, 86400, secrecy::none),
  PARLEY_FIELD(security, refresh_token_ttl_s, 300, 365 * 86400, secrecy::none),
  PARLEY_FIELD(security, login_max_failures, 1, 1000, secrecy::none),
  PARLEY_FIELD(security, login_lockout_base_s, 1, 86400, secrecy::none),
  PARLEY_FIELD(security, login_lockout_max_s, 1, 30 * 86400, secrecy::none),
  // 10 (1 MiB) is for tests; production keeps 15 (32 MiB) or more.
  PARLEY_FIELD(security, password_scrypt_log_n, 10, 20, secrecy::none),
  PARLEY_FIELD(log, level, any_string, any_string, secrecy::none),
  PARLEY_FIELD(runtime, scheduler_threads, 1, 256, secrecy::none),
  PARLEY_FIELD(runtime, scheduler_moderate_polls, 0, 100000, secrecy::none),
  // 0 restarts means "escalate on the first failure", a legitimate strict setting.
  PARLEY_FIELD(runtime, supervisor_max_restarts, 0, 10000, secrecy::none),
  PARLEY_FIELD(runtime, supervisor_window_s, 1, 86400, secrecy::none),
  PARLEY_FIELD(runtime, conversation_idle_timeout_s, 1, 7 * 86400, secrecy::none),
  PARLEY_FIELD(runtime, tenant_sweep_interval_s, 1, 86400, secrecy::none),
  PARLEY_FIELD(runtime, tenant_sweep_horizon_h, 1, 30 * 24, secrecy::none),
  PARLEY_FIELD(retention, raw_event_days, 0, 3650, secrecy::none),
  PARLEY_FIELD(ingest, max_in_flight, 1, 1000000, secrecy::none),
  PARLEY_FIELD(ingest, max_queued_mb, 1, 1 << 20, secrecy::none),
  PARLEY_FIELD(ingest, batch_interval_ms, 0, 10000, secrecy::none),
  PARLEY_FIELD(ingest, batch_max_rows, 1, 100000, secrecy::none),
  PARLEY_FIELD(outbound, max_attempts, 1, 100, secrecy::none),
  PARLEY_FIELD(outbound, backoff_base_ms, 1, day_ms, secrecy::none),
  PARLEY_FIELD(outbound, backoff_max_ms, 1, day_ms, secrecy::none),
  PARLEY_FIELD(outbound, request_timeout_ms, 1, 600000, secrecy::none),
  PARLEY_FIELD(outbound, max_in_flight, 1, 1024, secrecy::none),
  PARLEY_FIELD(outbound, pair_burst, 1, 10000, secrecy::none),
  PARLEY_FIELD(outbound, pair_interval_ms, 1, day_ms, secrecy::none),
  PARLEY_FIELD(outbound, health_interval_s, 1, 86400, secrecy::none),
  PARLEY_FIELD(outbound, breaker_open_ms, 1, 600000, secrecy::none),
  PARLEY_FIELD(outbound, http_connections, 1, 4096, secrecy::none),
};
// clang-format on

#undef PARLEY_FIELD

constexpr std::string_view env_prefix = "PARLEY_";
constexpr std::string_view master_key_alias = "PARLEY_MASTER_KEY";

// Variables the scripts, tests and benchmarks use for themselves; they are not node configuration.
constexpr std::array<std::string_view, 10> foreign_env_prefixes = {
    "PARLEY_TEST_",  "PARLEY_BENCH_",    "PARLEY_PG_",    "PARLEY_REDIS_PORT", "PARLEY_DEMO_",
    "PARLEY_CONFIG", "PARLEY_SANITIZE_", "PARLEY_BUILD_", "PARLEY_BIN",        "PARLEY_FUZZ_",
};

constexpr std::array<std::string_view, 6> log_levels = {"trace", "debug", "info",
                                                        "warn",  "error", "off"};

std::string dotted(const field_spec& f) {
  return std::string(f.section) + "." + std::string(f.key);
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& ch : out)
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return out;
}

std::string env_name(const field_spec& f) {
  return std::string(env_prefix) + upper(f.section) + "_" + upper(f.key);
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty())
      out += ", ";
    out += item;
  }
  return out;
}

std::vector<std::string> section_names() {
  std::vector<std::string> out;
  for (const auto& f : field_table)
    if (std::find(out.begin(), out.end(), f.section) == out.end())
      out.emplace_back(f.section);
  return out;
}

std::vector<std::string> key_names(std::string_view section) {
  std::vector<std::string> out;
  for (const auto& f : field_table)
    if (f.section == section)
      out.emplace_back(f.key);
  return out;
}

const field_spec* find_field(std::string_view section, std::string_view key) {
  for (const auto& f : field_table)
    if (f.section == section && f.key == key)
      return &f;
  return nullptr;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// Typos are the usual cause of an unknown key; naming the near miss saves a trip to the docs.
std::string did_you_mean(std::string_view wrong, const std::vector<std::string>& candidates) {
  const std::string* best = nullptr;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const auto& c : candidates) {
    auto d = edit_distance(upper(wrong), upper(c));
    if (d < best_distance) {
      best_distance = d;
      best = &c;
    }
  }
  if (best != nullptr && best_distance <= std::max<size_t>(2, best->size() / 4))
    return " (did you mean " + *best + "?)";
  return {};
}

// Echoes offending input for diagnosis, bounded so a pasted blob does not flood the log.
std::string shown(const json& v) {
  auto text = v.dump();
  if (text.size() > 80)
    text = text.substr(0, 77) + "...";
  return text;
}

std::string expected_form(const field_spec& f, const field_ref& ref) {
  if (std::holds_alternative<std::string*>(ref))
    return "expected a string";
  if (std::holds_alternative<bool*>(ref))
    return "expected true or false";
  return "expected an integer " + std::to_string(f.min) + ".." + std::to_string(f.max);
}

// `origin` says where a value came from, for messages: empty for the file, else the variable.
[[noreturn]] void reject(const field_spec& f, const std::string& what, const std::string& origin) {
  throw config_error(dotted(f), origin.empty() ? what : what + " (from " + origin + ")");
}

void store_integer(parley_config& cfg, const field_spec& f, long long value) {
  std::visit(
      [&](auto* target) {
        using T = std::remove_pointer_t<decltype(target)>;
        if constexpr (!std::is_same_v<T, std::string> && !std::is_same_v<T, bool>)
          *target = static_cast<T>(value);
      },
      f.ref(cfg));
}

void apply_json(parley_config& cfg, const field_spec& f, const json& v) {
  auto ref = f.ref(cfg);
  const bool secret = f.kind != secrecy::none;
  if (auto* s = std::get_if<std::string*>(&ref)) {
    if (!v.is_string())
      reject(f, expected_form(f, ref) + ", got " + (secret ? std::string(v.type_name()) : shown(v)),
             "");
    **s = v.get<std::string>();
    return;
  }
  if (auto* b = std::get_if<bool*>(&ref)) {
    if (!v.is_boolean())
      reject(f, expected_form(f, ref) + ", got " + shown(v), "");
    **b = v.get<bool>();
    return;
  }
  long long value = 0;
  if (v.is_number_unsigned()) {
    auto u = v.get<unsigned long long>();
    if (u > static_cast<unsigned long long>(f.max))
      reject(f, expected_form(f, ref) + ", got " + shown(v), "");
    value = static_cast<long long>(u);
  } else if (v.is_number_integer()) {
    value = v.get<long long>();
  } else {
    reject(f, expected_form(f, ref) + ", got " + shown(v), "");
  }
  if (value < f.min || value > f.max)
    reject(f, expected_form(f, ref) + ", got " + shown(v), "");
  store_integer(cfg, f, value);
}

void apply_env(parley_config& cfg, const field_spec& f, const std::string& var,
               const std::string& text) {
  auto ref = f.ref(cfg);
  if (auto* s = std::get_if<std::string*>(&ref)) {
    **s = text;
    return;
  }
  if (auto* b = std::get_if<bool*>(&ref)) {
    if (text == "true" || text == "1")
      **b = true;
    else if (text == "false" || text == "0")
      **b = false;
    else
      reject(f, expected_form(f, ref) + " (or 1 or 0), got " + shown(json(text)), var);
    return;
  }
  long long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value < f.min ||
      value > f.max)
    reject(f, expected_form(f, ref) + ", got " + shown(json(text)), var);
  store_integer(cfg, f, value);
}

void apply_file(parley_config& cfg, const std::string& json_text) {
  if (std::all_of(json_text.begin(), json_text.end(),
                  [](unsigned char ch) { return std::isspace(ch) != 0; }))
    return;
  json doc;
  try {
    doc = json::parse(json_text, nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
    throw config_error("--config", std::string("invalid JSON: ") + e.what());
  }
  const auto sections = section_names();
  if (!doc.is_object())
    throw config_error("--config", "expected a JSON object with sections " + join(sections) +
                                       ", got " + std::string(doc.type_name()));
  for (const auto& [section, body] : doc.items()) {
    if (std::find(sections.begin(), sections.end(), section) == sections.end())
      throw config_error(section, "unknown section; known sections: " + join(sections) +
                                      did_you_mean(section, sections));
    if (!body.is_object())
      throw config_error(section, "expected an object, got " + shown(body));
    for (const auto& [key, value] : body.items()) {
      const auto* f = find_field(section, key);
      if (f == nullptr) {
        auto known = key_names(section);
        throw config_error(section + "." + key,
                           "unknown key; known keys: " + join(known) + did_you_mean(key, known));
      }
      apply_json(cfg, *f, value);
    }
  }
}

using origin_map = std::map<std::string, std::string>;

void apply_environment(parley_config& cfg, const env_map& env, origin_map& origin) {
  std::vector<std::string> known_vars;
  for (const auto& f : field_table)
    known_vars.push_back(env_name(f));
  known_vars.emplace_back(master_key_alias);

  for (const auto& [name, value] : env) {
    if (!starts_with(name, env_prefix))
      continue;
    if (std::any_of(foreign_env_prefixes.begin(), foreign_env_prefixes.end(),
                    [&](std::string_view p) { return starts_with(name, p); }))
      continue;
    if (name == master_key_alias)
      continue; // applied below, after the canonical name, so the two can be checked together
    const field_spec* match = nullptr;
    for (const auto& f : field_table)
      if (env_name(f) == name)
        match = &f;
    if (match == nullptr)
      throw config_error(name, "unknown environment variable; known: " + join(known_vars) +
                                   did_you_mean(name, known_vars) +
                                   "; variables starting with PARLEY_TEST_, PARLEY_BENCH_, "
                                   "PARLEY_PG_, PARLEY_DEMO_, PARLEY_SANITIZE_, PARLEY_BUILD_, "
                                   "PARLEY_FUZZ_, PARLEY_BIN or "
                                   "PARLEY_CONFIG are left to scripts");
    apply_env(cfg, *match, name, value);
    origin[dotted(*match)] = name;
  }

  if (auto alias = env.find(std::string(master_key_alias)); alias != env.end()) {
    const auto* f = find_field("security", "master_key");
    auto canonical = env.find(env_name(*f));
    if (canonical != env.end() && canonical->second != alias->second)
      throw config_error(dotted(*f), std::string(master_key_alias) + " and " + env_name(*f) +
                                         " are both set and differ; set only one");
    apply_env(cfg, *f, alias->first, alias->second);
    origin[dotted(*f)] = alias->first;
  }
}

bool is_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char ch) { return std::isxdigit(ch) != 0; });
}

/// The first entry of http.cors_allowed_origins that is not "*" or scheme://host[:port] (what a
/// browser sends as Origin: no path, no trailing slash), if any.
std::optional<std::string> first_bad_origin(std::string_view list) {
  auto valid = [](std::string_view o) {
    if (o == "*")
      return true;
    std::string_view rest;
    if (starts_with(o, "https://"))
      rest = o.substr(8);
    else if (starts_with(o, "http://"))
      rest = o.substr(7);
    else
      return false;
    auto colon = rest.rfind(':');
    auto host = rest;
    if (colon != std::string_view::npos && rest.find(']', colon) == std::string_view::npos) {
      auto port = rest.substr(colon + 1);
      if (port.empty() || port.size() > 5 ||
          port.find_first_not_of("0123456789") != std::string_view::npos)
        return false;
      host = rest.substr(0, colon);
    }
    return !host.empty() && host.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-[]:") ==
                                std::string_view::npos;
  };
  while (!list.empty()) {
    auto comma = list.find(',');
    auto entry = list.substr(0, comma);
    while (!entry.empty() && entry.front() == ' ')
      entry.remove_prefix(1);
    while (!entry.empty() && entry.back() == ' ')
      entry.remove_suffix(1);
    if (!entry.empty() && !valid(entry))
      return std::string(entry);
    if (comma == std::string_view::npos)
      break;
    list.remove_prefix(comma + 1);
  }
  return std::nullopt;
}

void validate(const parley_config& cfg, const origin_map& origin, purpose p) {
  auto fail = [&](const char* section, const char* key, const std::string& what) {
    const auto* f = find_field(section, key);
    auto it = origin.find(dotted(*f));
    reject(*f, what, it == origin.end() ? std::string() : it->second);
  };

  if (cfg.http.address.empty())
    fail("http", "address", "must not be empty (e.g. 127.0.0.1 or 0.0.0.0)");

  if (auto bad = first_bad_origin(cfg.http.cors_allowed_origins))
    fail("http", "cors_allowed_origins",
         "expected comma-separated origins such as https://console.example.com (scheme, host and "
         "optional port; no path) or *, got " +
             shown(json(*bad)));

  if (cfg.db.url.empty())
    fail("db", "url",
         "required: set PARLEY_DB_URL (or db.url in the config file) to a libpq URI such as "
         "postgresql://user:password@127.0.0.1:5432/parley");

  if (!cfg.redis.url.empty() &&
      (!starts_with(cfg.redis.url, "redis://") || cfg.redis.url.size() == 8))
    fail("redis", "url", "expected redis://host:port (or empty to run without Redis)");

  if (p == purpose::serve && cfg.admin.token.empty())
    fail("admin", "token",
         "required: set PARLEY_ADMIN_TOKEN to a random string of at least 16 characters "
         "(generate one with `openssl rand -hex 32`)");
  // Only the length is reported: the value is a secret.
  if (!cfg.admin.token.empty() && cfg.admin.token.size() < 16)
    fail("admin", "token",
         "must be at least 16 characters, got " + std::to_string(cfg.admin.token.size()) +
             " (generate one with `openssl rand -hex 32`)");

  if (!starts_with(cfg.whatsapp.graph_base_url, "http://") &&
      !starts_with(cfg.whatsapp.graph_base_url, "https://"))
    fail("whatsapp", "graph_base_url",
         "expected an http:// or https:// URL, got " + shown(json(cfg.whatsapp.graph_base_url)));
  if (cfg.whatsapp.graph_version.empty())
    fail("whatsapp", "graph_version", "must not be empty (e.g. v21.0)");

  const auto& key = cfg.security.master_key;
  if (p == purpose::serve && key.empty())
    fail("security", "master_key",
         "required: set PARLEY_MASTER_KEY to 32 random bytes as 64 hex characters "
         "(generate one with `openssl rand -hex 32`)");
  if (!key.empty() && (key.size() != 64 || !is_hex(key)))
    fail("security", "master_key",
         "expected exactly 64 hex characters (32 bytes), got " + std::to_string(key.size()) +
             " characters" + (is_hex(key) ? "" : " including non-hex ones") +
             " (generate one with `openssl rand -hex 32`)");

  // Parsing validates every entry (format, versions) and names the key on failure.
  previous_master_keys(cfg.security);
  if (!cfg.security.jwt_secret.empty() && cfg.security.jwt_secret.size() < 32)
    fail("security", "jwt_secret",
         "must be at least 32 characters, got " + std::to_string(cfg.security.jwt_secret.size()) +
             " (generate one with `openssl rand -hex 32`, or leave it empty to derive it from "
             "the master key)");
  if (cfg.security.login_lockout_max_s < cfg.security.login_lockout_base_s)
    fail("security", "login_lockout_max_s", "must be at least security.login_lockout_base_s");

  if (std::find(log_levels.begin(), log_levels.end(), cfg.log.level) == log_levels.end())
    fail("log", "level",
         "expected one of trace|debug|info|warn|error|off, got " + shown(json(cfg.log.level)));
}

// Masks the password of a URI (scheme://user:password@host, ?password=...) or of a libpq
// key/value string (password=...). Over-masking is acceptable; leaking is not.
std::string redact_url(const std::string& url) {
  std::string out = url;
  if (auto scheme = out.find("://"); scheme != std::string::npos) {
    auto authority = scheme + 3;
    auto query = out.find('?', authority);
    auto at = out.rfind('@', query == std::string::npos ? std::string::npos : query);
    if (at != std::string::npos && at > authority) {
      auto colon = out.find(':', authority);
      if (colon != std::string::npos && colon < at)
        out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // "password=" as a URI query parameter or a libpq key/value pair, case-insensitive.
  std::string lower = out;
  for (auto& ch : lower)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (size_t pos = lower.find("password"); pos != std::string::npos;
       pos = lower.find("password", pos + 1)) {
    size_t i = pos + 8;
    while (i < out.size() && out[i] == ' ')
      ++i;
    if (i >= out.size() || out[i] != '=')
      continue;
    ++i;
    while (i < out.size() && out[i] == ' ')
      ++i;
    size_t end = i;
    if (end < out.size() && out[end] == '\'') {
      for (++end; end < out.size() && out[end] != '\''; ++end)
        if (out[end] == '\\')
          ++end;
      end = std::min(end + 1, out.size());
    } else {
      while (end < out.size() && out[end] != '&' && out[end] != ' ')
        ++end;
    }
    out.replace(i, end - i, "***");
    lower.replace(i, end - i, "***");
  }
  return out;
}

} // namespace

env_map environment() {
  env_map out;
  for (char** entry = ::environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    if (!starts_with(text, env_prefix))
      continue;
    auto eq = text.find('=');
    if (eq == std::string_view::npos)
      continue;
    out.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
  }
  return out;
}

parley_config parse(const std::string& json_text, const env_map& env, purpose p) {
  parley_config cfg;
  origin_map origin;
  apply_file(cfg, json_text);
  apply_environment(cfg, env, origin);
  validate(cfg, origin, p);
  return cfg;
}

parley_config load(const std::optional<std::string>& file, const env_map& env, purpose p) {
  if (!file)
    return parse({}, env, p);
  std::ifstream in(*file, std::ios::binary);
  if (!in)
    throw config_error("--config", "cannot read " + *file);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    throw config_error("--config", "cannot read " + *file);
  return parse(text.str(), env, p);
}

std::map<int, std::string> previous_master_keys(const security_config& sec) {
  std::map<int, std::string> out;
  std::string_view rest = sec.previous_master_keys;
  const std::string key = "security.previous_master_keys";
  while (!rest.empty()) {
    auto comma = rest.find(',');
    auto entry = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    while (!entry.empty() && entry.front() == ' ')
      entry.remove_prefix(1);
    while (!entry.empty() && entry.back() == ' ')
      entry.remove_suffix(1);
    if (entry.empty())
      continue;
    // Only positions are reported: the entries are secrets.
    auto colon = entry.find(':');
    auto number = entry.substr(0, colon);
    if (!number.empty() && number.front() == 'v')
      number.remove_prefix(1);
    int version = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), version);
    if (colon == std::string_view::npos || number.empty() || ec != std::errc{} ||
        end != number.data() + number.size() || version < 1)
      throw config_error(key, "expected comma-separated entries 'v<version>:<64 hex chars>' "
                              "(e.g. v1:<old key>), entry " +
                                  std::to_string(out.size() + 1) + " is malformed");
    auto hex = entry.substr(colon + 1);
    if (hex.size() != 64 || !is_hex(hex))
      throw config_error(key, "the key of version " + std::to_string(version) +
                                  " must be exactly 64 hex characters (32 bytes)");
    if (version == sec.master_key_version)
      throw config_error(key,
                         "version " + std::to_string(version) +
                             " is the current security.master_key_version; list only older keys");
    if (!out.emplace(version, std::string(hex)).second)
      throw config_error(key, "version " + std::to_string(version) + " is listed twice");
  }
  return out;
}

std::string redacted_json(const parley_config& cfg) {
  parley_config copy = cfg; // the table hands out mutable references
  // Ordered so --print-config reads in the order the struct (and the docs) declare the keys.
  nlohmann::ordered_json doc = nlohmann::ordered_json::object();
  for (const auto& f : field_table) {
    nlohmann::ordered_json value;
    std::visit(
        [&](auto* target) {
          using T = std::remove_pointer_t<decltype(target)>;
          if constexpr (std::is_same_v<T, std::string>) {
            switch (f.kind) {
            // An unset secret stays visibly empty: that is useful and reveals nothing.
            case secrecy::secret:
              value = target->empty() ? "" : "***";
              break;
            case secrecy::url_with_password:
              value = redact_url(*target);
              break;
            case secrecy::none:
              value = *target;
              break;
            }
          } else {
            value = *target;
          }
        },
        f.ref(copy));
    doc[std::string(f.section)][std::string(f.key)] = std::move(value);
  }
  return doc.dump(2);
}

} // namespace parley::config
