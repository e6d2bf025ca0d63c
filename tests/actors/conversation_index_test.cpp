// The tenant's index of active conversations: routing by (channel, contact) and forgetting an
// actor by its address when it ends, with keys that never mix channels or contacts.
#include "actors/conversation_index.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>

#include <gtest/gtest.h>

namespace parley {
namespace {

// Takes an argument: CAF 0.17 dereferences a null argument tuple when a function actor is
// spawned without any (UBSan flags it; see runtime/ask.hpp).
caf::behavior idle(caf::event_based_actor*, int) {
  return {[](int) {}};
}

TEST(conversation_index, routes_by_channel_and_contact_and_forgets_by_address) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 1);
  caf::actor_system sys{cfg};
  auto ch1 = *domain::uuid::parse("11111111-1111-4111-8111-111111111111");
  auto ch2 = *domain::uuid::parse("22222222-2222-4222-8222-222222222222");
  auto a = sys.spawn(idle, 1), b = sys.spawn(idle, 2), c = sys.spawn(idle, 3);
  conversation_index index;
  auto t0 = caf::actor_clock::time_point{};
  index.insert({ch1, "491700000001"}, a, t0);
  index.insert({ch2, "491700000001"}, b, t0); // the same contact on another number
  index.insert({ch1, "491700000002"}, c, t0);
  EXPECT_EQ(index.size(), 3u);
  EXPECT_EQ(index.find({ch1, "491700000001"}), a);
  EXPECT_EQ(index.find({ch2, "491700000001"}), b);
  EXPECT_EQ(index.find({ch1, "491700000002"}), c);
  EXPECT_FALSE(index.find({ch2, "491700000002"}));

  auto gone = index.erase(b.address());
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->channel, ch2);
  EXPECT_EQ(gone->wa_id, "491700000001");
  EXPECT_FALSE(index.find({ch2, "491700000001"}));
  EXPECT_FALSE(index.erase(b.address())) << "an address is forgotten once";
  EXPECT_EQ(index.find({ch1, "491700000001"}), a);
  EXPECT_EQ(index.size(), 2u);
  for (const auto& h : {a, b, c})
    caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
}

TEST(conversation_index, knows_which_conversations_had_nothing_routed_since_a_time) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 1);
  caf::actor_system sys{cfg};
  auto ch = *domain::uuid::parse("11111111-1111-4111-8111-111111111111");
  auto a = sys.spawn(idle, 1), b = sys.spawn(idle, 2);
  using namespace std::chrono_literals;
  auto t0 = caf::actor_clock::time_point{} + 1h;
  conversation_index index;
  index.insert({ch, "491700000001"}, a, t0);
  index.insert({ch, "491700000002"}, b, t0);
  // b gets a message later; a stays idle.
  EXPECT_EQ(index.touch({ch, "491700000002"}, t0 + 10min), b);
  EXPECT_FALSE(index.touch({ch, "491700000003"}, t0 + 10min)) << "unknown: nothing to touch";
  EXPECT_TRUE(index.idle_since(t0).empty()) << "routed to at t0 is not idle since t0";
  auto idle_5 = index.idle_since(t0 + 5min);
  ASSERT_EQ(idle_5.size(), 1u);
  EXPECT_EQ(idle_5[0], a);
  EXPECT_EQ(index.idle_since(t0 + 11min).size(), 2u);
  for (const auto& h : {a, b})
    caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
}

} // namespace
} // namespace parley
