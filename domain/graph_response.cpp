#include "domain/graph_response.hpp"

#include "domain/json_depth.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>

#include <nlohmann/json.hpp>

namespace parley::domain {

namespace {

using nlohmann::json;

constexpr size_t max_title_bytes = 512;
constexpr size_t max_details_bytes = 2048;

// Meta's "Throttling errors" plus the Graph API's generic rate limits (17 user, 32 page, 613
// "calls to this api have exceeded the rate limit"). 131048 (spam rate limit) and 133016
// (register/deregister limit) are listed there too: backing off is the only sensible reaction,
// and the retry budget bounds it.
constexpr std::array<int, 9> throttling_codes = {4,      17,     32,     613,   80007,
                                                 130429, 131048, 131056, 133016};

// Meta documents these as server-side and temporary: 1 "API Unknown (possible server error)",
// 2 "API Service (temporary downtime or overload)", 131000 "Something went wrong", 131016
// "Service unavailable", 131057 "Account in maintenance mode", 133004 "Server temporarily
// unavailable".
constexpr std::array<int, 6> temporary_codes = {1, 2, 131000, 131016, 131057, 133004};

// 190 "Access token has expired", 0 "AuthException" (token expired or invalidated).
constexpr std::array<int, 2> token_codes = {190, 0};

template <size_t N>
bool contains(const std::array<int, N>& codes, int code) {
  return std::find(codes.begin(), codes.end(), code) != codes.end();
}

// Cuts `s` to at most `limit` bytes without splitting a UTF-8 sequence.
std::string truncate_utf8(std::string s, size_t limit) {
  if (s.size() <= limit)
    return s;
  size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80)
    --end;
  s.resize(end);
  return s;
}

const json* member(const json& obj, const char* key) {
  if (!obj.is_object())
    return nullptr;
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::string string_member(const json& obj, const char* key) {
  const json* v = member(obj, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::string{};
}

// Graph sends integers; some proxies and BSPs re-encode them as strings.
std::optional<int> int_member(const json& obj, const char* key) {
  const json* v = member(obj, key);
  if (v == nullptr)
    return std::nullopt;
  if (v->is_number_integer()) {
    const auto i = v->get<int64_t>();
    if (i >= std::numeric_limits<int>::min() && i <= std::numeric_limits<int>::max())
      return static_cast<int>(i);
    return std::nullopt;
  }
  if (v->is_string()) {
    const auto& s = v->get_ref<const std::string&>();
    int value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec == std::errc{} && end == s.data() + s.size() && !s.empty())
      return value;
  }
  return std::nullopt;
}

// "(#131047) Re-engagement message" -> "Re-engagement message".
std::string strip_code_prefix(std::string message) {
  if (message.size() > 3 && message[0] == '(' && message[1] == '#') {
    const auto close = message.find(')');
    if (close != std::string::npos) {
      size_t start = close + 1;
      while (start < message.size() && message[start] == ' ')
        ++start;
      return message.substr(start);
    }
  }
  return message;
}

std::string http_title(int status) {
  return "HTTP " + std::to_string(status);
}

bool is_2xx(int status) {
  return status >= 200 && status < 300;
}
bool is_5xx(int status) {
  return status >= 500 && status < 600;
}

// No JSON error to go by: the status alone decides. Status 0 means the caller got no answer.
graph_result classify_by_status(int status, graph_result r) {
  if (r.error_title.empty())
    r.error_title = http_title(status);
  if (status == 429) {
    r.outcome = graph_outcome::retry;
    r.throttled = true;
  } else if (is_5xx(status) || status <= 0) {
    r.outcome = graph_outcome::retry;
  } else {
    r.outcome = graph_outcome::failed;
  }
  return r;
}

graph_result classify_error(int status, const json& error) {
  graph_result r;
  r.error_code = int_member(error, "code");
  r.error_subcode = int_member(error, "error_subcode");
  std::string title = string_member(error, "error_user_title");
  if (title.empty())
    title = strip_code_prefix(string_member(error, "message"));
  if (title.empty())
    title = http_title(status);
  r.error_title = truncate_utf8(std::move(title), max_title_bytes);
  if (const json* data = member(error, "error_data"))
    r.error_details = truncate_utf8(string_member(*data, "details"), max_details_bytes);

  const std::optional<int> code = r.error_code;
  if ((code && contains(token_codes, *code)) ||
      (status == 401 && string_member(error, "type") == "OAuthException")) {
    r.outcome = graph_outcome::token_invalid;
  } else if (status == 429 || (code && contains(throttling_codes, *code))) {
    r.outcome = graph_outcome::retry;
    r.throttled = true;
  } else if (is_5xx(status) || (code && contains(temporary_codes, *code))) {
    r.outcome = graph_outcome::retry;
  } else if (!code) {
    return classify_by_status(status, std::move(r));
  } else {
    r.outcome = graph_outcome::failed;
  }
  return r;
}

} // namespace

graph_result classify_graph_response(int http_status, std::string_view body) {
  // The parser is iterative in nlohmann/json 3.11 and exceptions are off, so no body can throw
  // or exhaust the stack here; only top-level members are looked at.
  // A Graph URL is set per channel, so the answering server may be anyone's: hostile nesting is
  // treated like any other body that is not a Graph answer.
  const json parsed = json_text_nests_deeper_than(body, 64)
                          ? json(json::value_t::discarded)
                          : json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (const json* error = member(parsed, "error"); error != nullptr && error->is_object())
    return classify_error(http_status, *error);

  if (is_2xx(http_status)) {
    graph_result r;
    if (const json* messages = member(parsed, "messages");
        messages != nullptr && messages->is_array() && !messages->empty()) {
      r.wamid = string_member(messages->front(), "id");
      if (!r.wamid.empty()) {
        r.outcome = graph_outcome::sent;
        return r;
      }
    }
    if (const json* success = member(parsed, "success");
        success != nullptr && success->is_boolean() && success->get<bool>()) {
      r.wamid.clear();
      r.outcome = graph_outcome::sent;
      return r;
    }
    // A 2xx without a message id is a protocol error, and it is failed, not retried: Meta may
    // well have accepted (and will deliver) the message, so a retry risks sending the customer
    // the same message up to max_attempts times, and a change of Meta's answer format is not
    // fixed by asking again. A visible failure the user can resend is the lesser harm.
    r.outcome = graph_outcome::failed;
    r.error_title =
        "unexpected response: HTTP " + std::to_string(http_status) + " without a message id";
    return r;
  }
  return classify_by_status(http_status, graph_result{});
}

graph_result classify_network_error(std::string_view what) {
  graph_result r;
  r.outcome = graph_outcome::retry;
  r.error_title = truncate_utf8("network error: " + std::string(what), max_title_bytes);
  return r;
}

std::string_view to_string(graph_outcome o) {
  switch (o) {
  case graph_outcome::sent:
    return "sent";
  case graph_outcome::retry:
    return "retry";
  case graph_outcome::failed:
    return "failed";
  case graph_outcome::token_invalid:
    return "token_invalid";
  }
  return "retry";
}

} // namespace parley::domain
