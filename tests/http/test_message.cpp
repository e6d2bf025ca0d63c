#include "http/message.hpp"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/errors.hpp"

using namespace parley::http;

TEST(Message, ErrorBodyIsExactlyTheApiShape) {
  auto r = response::error(404, "not_found", "no route for /x");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, R"({"error":{"code":"not_found","message":"no route for /x"}})");
}

TEST(Message, ErrorBodyEscapesAndSurvivesInvalidUtf8) {
  auto r = response::error(400, "invalid_request", "bad \"q\" \xff");
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["error"]["code"], "invalid_request");
  EXPECT_EQ(j["error"]["message"].get<std::string>().substr(0, 8), "bad \"q\" ");
}

TEST(Message, FromErrorUsesTheProductTable) {
  auto r = response::from_error(parley::errc::not_found, "tenant t1 not found");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, R"({"error":{"code":"not_found","message":"tenant t1 not found"}})");
  r = response::from_error(parley::errc::timeout, "slow");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"]["code"], "upstream_timeout");
}

TEST(Message, JsonResponse) {
  auto r = response::json(201, {{"id", "t1"}});
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, R"({"id":"t1"})");
}

TEST(Message, HeaderLookup) {
  request req;
  req.headers = {{"content-type", "application/json"}, {"x-a", "1"}, {"x-a", "2"}};
  EXPECT_EQ(req.header("content-type"), "application/json");
  EXPECT_EQ(req.header("x-a"), "1");
  EXPECT_EQ(req.header("missing"), "");
}

TEST(Responder, OnlyTheFirstCallCounts) {
  std::vector<int> got;
  {
    responder r([&](response res) { got.push_back(res.status); });
    auto copy = r;
    EXPECT_FALSE(r.answered());
    copy(response::error(409, "conflict", "x"));
    EXPECT_TRUE(r.answered());
    r(response{});
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], 409);
}

TEST(Responder, AStreamAnswerThatComesSecondStillHearsItsEnd) {
  // A stream's owner may hold something for it until its close hook runs (the events route holds
  // one of the tenant's stream places): a second answer is dropped, but not silently.
  int closed = 0;
  responder r([](response) {});
  r(response::error(409, "conflict", "x"));
  stream_hooks h;
  h.closed = [&closed] { ++closed; };
  r(response::event_stream(std::move(h)));
  EXPECT_EQ(closed, 1);
}

TEST(Responder, DroppingTheLastCopyAnswers500) {
  std::vector<response> got;
  {
    responder r([&](response res) { got.push_back(std::move(res)); });
    auto copy = r;
    { auto another = copy; }
    EXPECT_TRUE(got.empty()); // copies still alive
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].status, 500);
  EXPECT_EQ(nlohmann::json::parse(got[0].body)["error"]["code"], "internal_error");
}

TEST(Responder, ConcurrentCallsDeliverExactlyOnce) {
  for (int round = 0; round < 50; ++round) {
    std::atomic<int> deliveries{0};
    {
      responder r([&](response) { deliveries.fetch_add(1); });
      std::vector<std::thread> threads;
      for (int i = 0; i < 4; ++i)
        threads.emplace_back([r] { r(response{}); });
      for (auto& t : threads)
        t.join();
    }
    EXPECT_EQ(deliveries.load(), 1);
  }
}
