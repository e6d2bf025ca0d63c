#include "domain/graph_response.hpp"

#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

using namespace parley::domain;
using go = graph_outcome;

namespace {

// A Graph API error body as Meta sends it.
std::string error_body(int code, std::string_view message, std::string_view details = "",
                       std::string_view type = "OAuthException") {
  std::string body = R"({"error":{"message":")" + std::string(message) + R"(","type":")" +
                     std::string(type) + R"(","code":)" + std::to_string(code);
  if (!details.empty())
    body += R"(,"error_data":{"messaging_product":"whatsapp","details":")" + std::string(details) +
            R"("})";
  body += R"(,"fbtrace_id":"AbCdEf"}})";
  return body;
}

} // namespace

TEST(graph_response, message_accepted) {
  const auto r = classify_graph_response(
      200, R"({"messaging_product":"whatsapp","contacts":[{"input":"+4915112345678",
      "wa_id":"4915112345678"}],"messages":[{"id":"wamid.HBgLNDkxNTExMjM0NTY3OBUCABEYEjQ="}]})");
  EXPECT_EQ(r.outcome, go::sent);
  EXPECT_EQ(r.wamid, "wamid.HBgLNDkxNTExMjM0NTY3OBUCABEYEjQ=");
  EXPECT_FALSE(r.error_code);
  EXPECT_TRUE(r.error_title.empty());
  EXPECT_FALSE(r.throttled);
}

TEST(graph_response, mark_as_read_success) {
  const auto r = classify_graph_response(200, R"({"success":true})");
  EXPECT_EQ(r.outcome, go::sent);
  EXPECT_TRUE(r.wamid.empty());
}

TEST(graph_response, unexpected_2xx_is_failed_not_retried) {
  for (std::string_view body :
       {R"({})", R"({"success":false})", R"({"messages":[]})", R"({"messages":[{"id":""}]})",
        R"({"messages":[{"id":5}]})", "<html>ok</html>", ""}) {
    const auto r = classify_graph_response(200, body);
    EXPECT_EQ(r.outcome, go::failed) << body;
    EXPECT_EQ(r.error_title, "unexpected response: HTTP 200 without a message id") << body;
    EXPECT_TRUE(r.wamid.empty());
  }
}

TEST(graph_response, error_fields_are_extracted) {
  const auto r = classify_graph_response(
      400, R"({"error":{"message":"(#131047) Re-engagement message","type":"OAuthException",
      "code":131047,"error_subcode":2494010,"error_data":{"messaging_product":"whatsapp",
      "details":"Message failed to send because more than 24 hours have passed"},
      "fbtrace_id":"x"}})");
  EXPECT_EQ(r.outcome, go::failed);
  EXPECT_EQ(r.error_code, 131047);
  EXPECT_EQ(r.error_subcode, 2494010);
  EXPECT_EQ(r.error_title, "Re-engagement message");
  EXPECT_EQ(r.error_details, "Message failed to send because more than 24 hours have passed");
  EXPECT_FALSE(r.retry_after);
}

TEST(graph_response, user_title_wins_over_message) {
  const auto r =
      classify_graph_response(400, R"({"error":{"message":"(#100) Invalid parameter","code":100,
      "error_user_title":"Bad phone","error_user_msg":"The number is wrong"}})");
  EXPECT_EQ(r.error_title, "Bad phone");
}

TEST(graph_response, title_falls_back_to_http_status) {
  EXPECT_EQ(classify_graph_response(400, R"({"error":{"code":100}})").error_title, "HTTP 400");
  EXPECT_EQ(classify_graph_response(400, R"({"error":{"code":100,"message":""}})").error_title,
            "HTTP 400");
  // A message without the prefix is kept as it is.
  EXPECT_EQ(classify_graph_response(400, R"({"error":{"code":100,"message":"Plain"}})").error_title,
            "Plain");
}

TEST(graph_response, codes_as_strings_are_understood) {
  const auto r = classify_graph_response(429, R"({"error":{"code":"131056","message":"x"}})");
  EXPECT_EQ(r.error_code, 131056);
  EXPECT_TRUE(r.throttled);
  EXPECT_FALSE(
      classify_graph_response(400, R"({"error":{"code":"13x","message":"x"}})").error_code);
  EXPECT_FALSE(
      classify_graph_response(400, R"({"error":{"code":99999999999,"message":"x"}})").error_code);
}

struct code_case {
  int http_status;
  int code;
  go outcome;
  bool throttled;
};

TEST(graph_response, codes_map_to_outcomes) {
  const code_case cases[] = {
      // throttling: retry, throttled (Meta usually sends them with 400 or 429)
      {400, 130429, go::retry, true},
      {400, 131056, go::retry, true},
      {400, 131048, go::retry, true},
      {400, 4, go::retry, true},
      {400, 80007, go::retry, true},
      {400, 613, go::retry, true},
      {400, 17, go::retry, true},
      {400, 133016, go::retry, true},
      {429, 100, go::retry, true}, // HTTP 429 throttles whatever the code
      // temporary server-side errors
      {500, 1, go::retry, false},
      {503, 2, go::retry, false},
      {500, 131000, go::retry, false},
      {400, 131000, go::retry, false},
      {503, 131016, go::retry, false},
      {503, 133004, go::retry, false},
      {400, 131057, go::retry, false},
      {500, 3, go::retry, false}, // any 5xx is worth another try
      // token
      {401, 190, go::token_invalid, false},
      {400, 190, go::token_invalid, false},
      {401, 0, go::token_invalid, false},
      // permanent for this message
      {400, 131047, go::failed, false},
      {400, 131026, go::failed, false},
      {400, 100, go::failed, false},
      {400, 131051, go::failed, false},
      {400, 132000, go::failed, false},
      {400, 131008, go::failed, false},
      {400, 131009, go::failed, false},
      {403, 368, go::failed, false},
      {403, 10, go::failed, false},
      {400, 131049, go::failed, false},
      {400, 135000, go::failed, false},
  };
  for (const auto& c : cases) {
    const auto r = classify_graph_response(c.http_status, error_body(c.code, "(#1) x"));
    EXPECT_EQ(r.outcome, c.outcome)
        << c.http_status << " code " << c.code << " -> " << to_string(r.outcome);
    EXPECT_EQ(r.throttled, c.throttled) << c.http_status << " code " << c.code;
    EXPECT_EQ(r.error_code, c.code);
  }
}

TEST(graph_response, http_401_oauth_exception_is_token_invalid) {
  const auto r = classify_graph_response(
      401, R"({"error":{"message":"Malformed access token","type":"OAuthException"}})");
  EXPECT_EQ(r.outcome, go::token_invalid);
  EXPECT_EQ(r.error_title, "Malformed access token");
  // A throttling code with the OAuthException type on other statuses is not a token problem.
  EXPECT_EQ(classify_graph_response(400, error_body(131056, "x", "", "OAuthException")).outcome,
            go::retry);
}

TEST(graph_response, error_without_code_goes_by_status) {
  EXPECT_EQ(classify_graph_response(502, R"({"error":{"message":"x"}})").outcome, go::retry);
  EXPECT_EQ(classify_graph_response(400, R"({"error":{"message":"x"}})").outcome, go::failed);
  const auto throttled = classify_graph_response(429, R"({"error":{"message":"x"}})");
  EXPECT_EQ(throttled.outcome, go::retry);
  EXPECT_TRUE(throttled.throttled);
}

TEST(graph_response, non_json_bodies_go_by_status) {
  const std::string html = "<html><body>502 Bad Gateway</body></html>";
  for (int status : {500, 502, 503, 504}) {
    const auto r = classify_graph_response(status, html);
    EXPECT_EQ(r.outcome, go::retry) << status;
    EXPECT_EQ(r.error_title, "HTTP " + std::to_string(status));
    EXPECT_FALSE(r.throttled);
  }
  const auto throttled = classify_graph_response(429, "Too Many Requests");
  EXPECT_EQ(throttled.outcome, go::retry);
  EXPECT_TRUE(throttled.throttled);
  for (int status : {400, 401, 403, 404, 413, 301}) {
    const auto r = classify_graph_response(status, html);
    EXPECT_EQ(r.outcome, go::failed) << status;
    EXPECT_EQ(r.error_title, "HTTP " + std::to_string(status));
    EXPECT_FALSE(r.error_code);
  }
  // JSON that is not a Graph error is no better than HTML.
  EXPECT_EQ(classify_graph_response(503, R"({"error":"overloaded"})").outcome, go::retry);
  EXPECT_EQ(classify_graph_response(404, R"([1,2])").outcome, go::failed);
  EXPECT_EQ(classify_graph_response(0, "").outcome, go::retry);
}

TEST(graph_response, long_texts_are_cut_on_utf8_boundaries) {
  std::string message;
  for (int i = 0; i < 400; ++i)
    message += "\xC3\xA9"; // é, 2 bytes
  const auto r = classify_graph_response(400, R"({"error":{"code":100,"message":")" + message +
                                                  R"(","error_data":{"details":")" + message +
                                                  message + message + R"("}}})");
  EXPECT_LE(r.error_title.size(), 512u);
  EXPECT_EQ(r.error_title.size() % 2, 0u);
  EXPECT_LE(r.error_details.size(), 2048u);
  EXPECT_EQ(r.error_details.size() % 2, 0u);
}

TEST(graph_response, network_errors_are_retried) {
  const auto r = classify_network_error("connection refused");
  EXPECT_EQ(r.outcome, go::retry);
  EXPECT_EQ(r.error_title, "network error: connection refused");
  EXPECT_FALSE(r.throttled);
  EXPECT_FALSE(r.error_code);
}

TEST(graph_response, outcome_names) {
  EXPECT_EQ(to_string(go::sent), "sent");
  EXPECT_EQ(to_string(go::retry), "retry");
  EXPECT_EQ(to_string(go::failed), "failed");
  EXPECT_EQ(to_string(go::token_invalid), "token_invalid");
}

// Whatever arrives, classification returns a value: truncations and byte flips of real answers,
// random bytes, odd types in every field, and hostile nesting.
TEST(graph_response, never_throws_on_garbage) {
  const std::vector<std::string> seeds = {
      R"({"messaging_product":"whatsapp","messages":[{"id":"wamid.X"}]})",
      error_body(131047, "(#131047) Re-engagement message", "more than 24 hours"),
      R"({"success":true})",
      R"({"error":{"code":[1],"message":{"a":1},"error_data":"x","error_subcode":1.5,)"
      R"("error_user_title":null,"type":7}})",
      R"({"messages":{"id":"x"}})",
      R"({"messages":[null]})",
      R"({"error":null})",
  };
  std::mt19937_64 rng(17);
  const int statuses[] = {0, 200, 201, 204, 400, 401, 429, 500, 503, 999, -1};
  auto check = [&](const std::string& body) {
    for (int status : statuses) {
      graph_result r;
      ASSERT_NO_THROW(r = classify_graph_response(status, body)) << body;
      if (r.outcome == go::sent)
        EXPECT_TRUE(status >= 200 && status < 300) << body;
      else
        EXPECT_FALSE(r.error_title.empty()) << status << " " << body;
    }
  };
  for (const auto& seed : seeds) {
    for (size_t cut = 0; cut <= seed.size(); ++cut)
      check(seed.substr(0, cut));
    for (int i = 0; i < 200; ++i) {
      std::string s = seed;
      s[rng() % s.size()] = static_cast<char>(rng() % 256);
      check(s);
    }
  }
  for (int i = 0; i < 200; ++i) {
    std::string s(rng() % 64, '\0');
    for (auto& c : s)
      c = static_cast<char>(rng() % 256);
    check(s);
  }
  check(std::string(20000, '[') + std::string(20000, ']'));
  check(R"({"error":)" + std::string(20000, '{'));
}
