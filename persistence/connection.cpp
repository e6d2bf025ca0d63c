#include "persistence/connection.hpp"

#include <algorithm>
#include <cctype>
#include <regex>
#include <vector>

#include <pqxx/except>

namespace parley::persistence {

namespace {

bool is_uri(std::string_view url) {
  return url.starts_with("postgresql://") || url.starts_with("postgres://");
}

std::string percent_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0xF];
    }
  }
  return out;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string{s.substr(i + 1, 2)}, nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

/// A URI cut into the pieces we edit; everything else is kept verbatim.
struct uri_parts {
  std::string base;                ///< scheme://userinfo@hosts, without path and query
  std::string path;                ///< database name (still percent-encoded), may be empty
  std::vector<std::string> params; ///< "key=value" query items, verbatim
  std::string password;            ///< decoded password from the user info, if any
};

uri_parts split_uri(std::string_view url) {
  uri_parts p;
  auto authority = url.find("://") + 3;
  auto query = url.find('?', authority);
  auto head = url.substr(0, query);
  auto slash = head.find('/', authority);
  p.base = std::string{head.substr(0, slash)};
  if (slash != std::string_view::npos)
    p.path = std::string{head.substr(slash + 1)};
  if (query != std::string_view::npos) {
    auto rest = url.substr(query + 1);
    while (!rest.empty()) {
      auto amp = rest.find('&');
      if (auto item = rest.substr(0, amp); !item.empty())
        p.params.emplace_back(item);
      rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    }
  }
  auto auth = std::string_view{p.base}.substr(authority);
  if (auto at = auth.rfind('@'); at != std::string_view::npos) {
    auto userinfo = auth.substr(0, at);
    if (auto colon = userinfo.find(':'); colon != std::string_view::npos)
      p.password = percent_decode(userinfo.substr(colon + 1));
  }
  return p;
}

std::string join_uri(const uri_parts& p) {
  std::string out = p.base + "/" + p.path;
  for (size_t i = 0; i < p.params.size(); ++i)
    out += (i == 0 ? "?" : "&") + p.params[i];
  return out;
}

std::string param_key(std::string_view item) {
  return std::string{item.substr(0, item.find('='))};
}

bool kv_has_key(const std::string& conninfo, const std::string& key) {
  std::regex re{"(^|\\s)" + key + "\\s*="};
  return std::regex_search(conninfo, re);
}

std::string kv_quote(std::string_view v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\')
      out += '\\';
    out += c;
  }
  return out + "'";
}

std::string kv_password(const std::string& conninfo) {
  std::smatch m;
  std::regex re{R"((^|\s)password\s*=\s*('((?:[^'\\]|\\.)*)'|(\S+)))"};
  if (!std::regex_search(conninfo, m, re))
    return {};
  return m[3].matched ? m[3].str() : m[4].str();
}

std::string password_of(std::string_view url) {
  return is_uri(url) ? split_uri(url).password : kv_password(std::string{url});
}

void replace_all(std::string& text, const std::string& needle, std::string_view with) {
  if (needle.empty())
    return;
  for (auto pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + with.size()))
    text.replace(pos, needle.size(), with);
}

} // namespace

connection_options options_from(const config::db_config& cfg, std::string application_name) {
  connection_options o;
  o.connect_timeout_ms = cfg.connect_timeout_ms;
  o.statement_timeout_ms = cfg.statement_timeout_ms;
  o.application_name = std::move(application_name);
  return o;
}

std::string connection_string(const std::string& url, const connection_options& opts) {
  // libpq counts connect_timeout in whole seconds; round up so a configured bound is never cut.
  auto connect_s = std::max(1, (opts.connect_timeout_ms + 999) / 1000);
  std::vector<std::pair<std::string, std::string>> extra{
      {"connect_timeout", std::to_string(connect_s)},
      {"application_name", opts.application_name},
      // Detect a peer that vanished without a FIN (network partition, VM pause) instead of waiting
      // on a socket forever: keepalives for idle connections, TCP_USER_TIMEOUT for unacked data.
      {"keepalives", "1"},
      {"keepalives_idle", "10"},
      {"keepalives_interval", "3"},
      {"keepalives_count", "3"},
      {"tcp_user_timeout", "10000"},
  };
  std::string statement_opt;
  if (opts.statement_timeout_ms > 0)
    statement_opt = "-c statement_timeout=" + std::to_string(opts.statement_timeout_ms);
  if (opts.index_plans_only)
    statement_opt += std::string{statement_opt.empty() ? "" : " "} +
                     "-c enable_seqscan=off -c enable_hashjoin=off -c enable_mergejoin=off";

  if (is_uri(url)) {
    auto p = split_uri(url);
    auto has = [&p](const std::string& key) {
      return std::any_of(p.params.begin(), p.params.end(),
                         [&key](const std::string& item) { return param_key(item) == key; });
    };
    for (auto& [key, value] : extra)
      if (!has(key))
        p.params.push_back(key + "=" + percent_encode(value));
    if (!statement_opt.empty()) {
      auto it = std::find_if(p.params.begin(), p.params.end(),
                             [](const std::string& item) { return param_key(item) == "options"; });
      if (it == p.params.end())
        p.params.push_back("options=" + percent_encode(statement_opt));
      else if (it->find("statement_timeout") == std::string::npos)
        *it += percent_encode(" " + statement_opt);
    }
    return join_uri(p);
  }
  std::string out = url;
  for (auto& [key, value] : extra)
    if (!kv_has_key(out, key))
      out += " " + key + "=" + kv_quote(value);
  // An operator's own `options` is left alone: merging two quoted option strings is not worth
  // the risk of mangling it.
  if (!statement_opt.empty() && !kv_has_key(out, "options"))
    out += " options=" + kv_quote(statement_opt);
  return out;
}

std::string with_database(const std::string& url, const std::string& dbname) {
  if (is_uri(url)) {
    auto p = split_uri(url);
    p.path = percent_encode(dbname);
    std::erase_if(p.params, [](const std::string& item) { return param_key(item) == "dbname"; });
    return join_uri(p);
  }
  // In a key=value string the last occurrence of a key wins.
  return url + " dbname=" + kv_quote(dbname);
}

std::string scrub(std::string_view text, std::string_view url) {
  std::string out{text};
  static const std::regex uri_password{R"(((?:postgres|postgresql)://[^:@/\s?]*):[^@\s]*@)"};
  static const std::regex kv_pw{R"((password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+))",
                                std::regex::icase};
  out = std::regex_replace(out, uri_password, "$1:***@");
  out = std::regex_replace(out, kv_pw, "$1***");
  if (!url.empty()) {
    auto pw = password_of(url);
    replace_all(out, pw, "***");
    replace_all(out, percent_encode(pw), "***");
  }
  return out;
}

std::unique_ptr<pqxx::connection> connect(const std::string& url, const connection_options& opts) {
  try {
    return std::make_unique<pqxx::connection>(connection_string(url, opts));
  } catch (const std::exception& e) {
    std::string msg = e.what();
    while (!msg.empty() && std::isspace(static_cast<unsigned char>(msg.back())))
      msg.pop_back();
    throw pqxx::broken_connection{scrub(msg, url)};
  }
}

} // namespace parley::persistence
