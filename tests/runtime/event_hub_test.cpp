// The hub's promises to event streams: order, per-tenant isolation, resumption after
// Last-Event-ID without gap or double, a plain resync when events are gone, bounded memory.
#include "runtime/event_hub.hpp"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace parley::runtime;
using namespace std::chrono_literals;

namespace {

struct fake_time {
  std::chrono::steady_clock::time_point now{};
  int64_t wall_ms = 1'700'000'000'000;
};

struct hub_fixture : ::testing::Test {
  fake_time t;
  event_hub hub{event_hub_options{3, 60s}, [this] { return t.now; }, [this] { return t.wall_ms; }};

  /// Subscribes and records what arrives.
  std::shared_ptr<std::vector<live_event>> listen(const std::string& tenant,
                                                  std::optional<event_id> last = std::nullopt,
                                                  event_hub::subscription* sub = nullptr) {
    auto got = std::make_shared<std::vector<live_event>>();
    auto s = hub.subscribe(tenant, last, [got](const live_event& e) { got->push_back(e); });
    if (sub)
      *sub = s;
    return got;
  }
};

std::vector<std::string> types(const std::vector<live_event>& evs) {
  std::vector<std::string> out;
  for (const auto& e : evs)
    out.push_back(e.type);
  return out;
}

} // namespace

TEST(EventId, ParsesOnlyWellFormedIds) {
  auto id = event_id::parse("1700000000000-7");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->ms, 1700000000000);
  EXPECT_EQ(id->n, 7);
  EXPECT_EQ(id->str(), "1700000000000-7");
  for (auto bad : {"", "-", "12", "12-", "-3", "a-1", "1-b", "1--2", "1-+2", "+1-2", " 1-2",
                   "99999999999999999999-1", "1-2-3"})
    EXPECT_FALSE(event_id::parse(bad)) << bad;
  EXPECT_LT(*event_id::parse("5-9"), *event_id::parse("6-0"));
  EXPECT_LT(*event_id::parse("5-9"), *event_id::parse("5-10"));
}

TEST_F(hub_fixture, NothingIsBuiltForTenantsNobodyListensTo) {
  EXPECT_FALSE(hub.wants("a"));
  hub.publish("a", "message.created", {{"x", 1}});
  EXPECT_EQ(hub.tenants_kept(), 0u);
  auto got = listen("a");
  EXPECT_TRUE(hub.wants("a"));
  EXPECT_TRUE(got->empty()); // nothing from before the subscription
}

TEST_F(hub_fixture, SubscribersGetTheirTenantsEventsInOrderAsSseFrames) {
  auto a = listen("a");
  auto b = listen("b");
  hub.publish("a", "message.created", {{"n", 1}});
  hub.publish("b", "channel.state", {{"n", 2}});
  t.wall_ms -= 5; // the clock steps back: ids still increase
  hub.publish("a", "message.status", {{"n", 3}});
  ASSERT_EQ(a->size(), 2u);
  ASSERT_EQ(b->size(), 1u);
  EXPECT_EQ(types(*a), (std::vector<std::string>{"message.created", "message.status"}));
  EXPECT_LT(*event_id::parse((*a)[0].id), *event_id::parse((*a)[1].id));
  EXPECT_EQ((*a)[0].wire, "id: " + (*a)[0].id + "\nevent: message.created\ndata: {\"n\":1}\n\n");
  EXPECT_EQ((*b)[0].type, "channel.state");
}

TEST_F(hub_fixture, ReconnectWithLastEventIdResumesWithoutGapOrDouble) {
  event_hub::subscription first;
  auto a = listen("a", std::nullopt, &first);
  hub.publish("a", "e1", {});
  hub.publish("a", "e2", {});
  auto seen = (*a)[0].id; // the client saw e1, then went away
  hub.unsubscribe("a", first.id);
  hub.publish("a", "e3", {}); // while disconnected: kept
  event_hub::subscription again;
  auto b = listen("a", event_id::parse(seen), &again);
  EXPECT_TRUE(again.resumed);
  hub.publish("a", "e4", {});
  EXPECT_EQ(types(*b), (std::vector<std::string>{"e2", "e3", "e4"}));
}

TEST_F(hub_fixture, TooOldLastEventIdGetsOneResyncCarryingTheLatestId) {
  auto a = listen("a");
  for (int i = 1; i <= 5; ++i) // the buffer keeps 3
    hub.publish("a", "e" + std::to_string(i), {});
  event_hub::subscription sub;
  auto b = listen("a", event_id::parse((*a)[0].id), &sub);
  EXPECT_FALSE(sub.resumed);
  ASSERT_EQ(b->size(), 1u);
  EXPECT_EQ((*b)[0].type, "stream.resync");
  EXPECT_EQ((*b)[0].id, (*a)[4].id);
  EXPECT_NE((*b)[0].wire.find("no longer kept"), std::string::npos);
  // The oldest kept one's predecessor is still fine.
  event_hub::subscription ok;
  auto c = listen("a", event_id::parse((*a)[1].id), &ok);
  EXPECT_TRUE(ok.resumed);
  EXPECT_EQ(types(*c), (std::vector<std::string>{"e3", "e4", "e5"}));
}

TEST_F(hub_fixture, LastEventIdFromBeforeTheBufferExistedIsAResync) {
  // e.g. an id issued before a restart of the node: nothing of that time is kept.
  event_hub::subscription sub;
  auto a = listen("a", event_id{t.wall_ms - 1000, 0}, &sub);
  EXPECT_FALSE(sub.resumed);
  ASSERT_EQ(a->size(), 1u);
  EXPECT_EQ((*a)[0].type, "stream.resync");
}

TEST_F(hub_fixture, BufferIsForgottenAWhileAfterTheLastSubscriberLeft) {
  event_hub::subscription sub;
  listen("a", std::nullopt, &sub);
  hub.publish("a", "e1", {});
  hub.unsubscribe("a", sub.id);
  EXPECT_EQ(hub.subscribers(), 0u);
  t.now += 59s;
  EXPECT_TRUE(hub.wants("a"));
  t.now += 2s;
  hub.publish("a", "e2", {}); // expired: dropped with the buffer
  EXPECT_FALSE(hub.wants("a"));
  EXPECT_EQ(hub.tenants_kept(), 0u);
}

TEST_F(hub_fixture, InvalidUtf8InDataIsReplacedNotThrown) {
  auto a = listen("a");
  EXPECT_NO_THROW(hub.publish("a", "e", {{"text", std::string("\xff\xfe")}}));
  ASSERT_EQ(a->size(), 1u);
}

TEST_F(hub_fixture, LastEventIdNeverIssuedHereIsAResync) {
  // Another node's id, or one from before the clock went back across a restart.
  listen("a");
  hub.publish("a", "e1", {});
  event_hub::subscription sub;
  auto b = listen("a", event_id{t.wall_ms + 60'000, 0}, &sub);
  EXPECT_FALSE(sub.resumed);
  ASSERT_EQ(b->size(), 1u);
  EXPECT_EQ((*b)[0].type, "stream.resync");
  EXPECT_NE((*b)[0].wire.find("not issued by this server"), std::string::npos);
}

TEST(EventHub, ReplayLargerThanAStreamMayQueueIsAResync) {
  std::chrono::steady_clock::time_point now{};
  event_hub hub{event_hub_options{100, 60s, 4096}, [&] { return now; }};
  std::vector<live_event> live;
  hub.subscribe("a", std::nullopt, [&](const live_event& e) { live.push_back(e); });
  std::string big(1000, 'x');
  for (int i = 0; i < 10; ++i)
    hub.publish("a", "e", {{"text", big}});
  std::vector<live_event> got;
  auto first = hub.subscribe("a", event_id::parse(live[0].id),
                             [&](const live_event& e) { got.push_back(e); });
  EXPECT_FALSE(first.resumed);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].type, "stream.resync");
  EXPECT_EQ(got[0].id, live.back().id);
  got.clear();
  auto near = hub.subscribe("a", event_id::parse(live[7].id),
                            [&](const live_event& e) { got.push_back(e); });
  EXPECT_TRUE(near.resumed);
  EXPECT_EQ(got.size(), 2u);
}

TEST(EventHub, StreamPlacesAreReservedExactlyEvenWhenTakenAtTheSameMoment) {
  event_hub hub;
  constexpr size_t limit = 5;
  std::atomic<size_t> granted{0};
  std::vector<std::thread> openers;
  for (int i = 0; i < 16; ++i)
    openers.emplace_back([&] {
      for (int k = 0; k < 4; ++k)
        if (hub.reserve_stream("a", limit))
          ++granted;
    });
  for (auto& th : openers)
    th.join();
  EXPECT_EQ(granted.load(), limit);
  EXPECT_EQ(hub.streams_reserved("a"), limit);
  EXPECT_TRUE(hub.reserve_stream("b", limit)); // per tenant
  hub.release_stream("a");
  EXPECT_TRUE(hub.reserve_stream("a", limit));
  EXPECT_FALSE(hub.reserve_stream("a", limit));
  for (size_t i = 0; i < limit; ++i)
    hub.release_stream("a");
  EXPECT_EQ(hub.streams_reserved("a"), 0u);
  hub.release_stream("a"); // more releases than reservations change nothing
  EXPECT_EQ(hub.streams_reserved("a"), 0u);
  EXPECT_FALSE(hub.reserve_stream("c", 0));
  EXPECT_EQ(hub.streams_reserved("c"), 0u);
}
