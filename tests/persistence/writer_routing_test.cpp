// Writes of a pinned kind always meet in the same writer's batches; the rest spread round robin.
#include "persistence/writer_routing.hpp"

#include <set>
#include <string>

#include <caf/all.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "persistence/messages.hpp"

using parley::persistence::persist_atom;
using parley::persistence::write_op;
using parley::persistence::writer_routing;

TEST(WriterRouting, PinnedKindsAlwaysGoToTheirWriterOthersTakeTurns) {
  writer_routing r{{{"accept", {0, 1}}, {"result", {1, 1}}, {"far", {7, 1}}}};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(r.pick("accept", "t1", 2), 0u);
    EXPECT_EQ(r.pick("result", "t1", 2), 1u);
    EXPECT_EQ(r.pick("far", "", 2), 1u); // modulo the pool's size
  }
  EXPECT_NE(r.pick("other", "t1", 2), r.pick("other", "t1", 2));
  EXPECT_EQ(r.pick("accept", "t1", 1), 0u);
  EXPECT_EQ(r.pick("result", "t1", 1), 0u);
}

TEST(WriterRouting, AKindSpreadOverWritersKeepsEachTenantOnOne) {
  writer_routing r{{{"accept", {0, 3}}, {"result", {3, 1}}}};
  std::set<size_t> used;
  for (int t = 0; t < 100; ++t) {
    auto tenant = "tenant-" + std::to_string(t);
    auto w = r.pick("accept", tenant, 4);
    EXPECT_LT(w, 3u);
    for (int i = 0; i < 3; ++i)
      EXPECT_EQ(r.pick("accept", tenant, 4), w);
    used.insert(w);
    EXPECT_EQ(r.pick("result", tenant, 4), 3u);
  }
  EXPECT_EQ(used.size(), 3u);
}

TEST(WriterRouting, AsThePolicyOfAnActorPool) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{cfg};
  auto worker = [](caf::event_based_actor*, int index) -> caf::behavior {
    return {[index](persist_atom, write_op&) { return nlohmann::json(index); },
            [index](int) { return nlohmann::json(index); }};
  };
  auto pool = caf::actor_pool::make(
      sys.dummy_execution_unit(), 2, [&, n = 0]() mutable { return sys.spawn(worker, n++); },
      writer_routing{{{"accept", {0, 1}}, {"result", {1, 1}}}}.policy());
  caf::scoped_actor self{sys};
  auto served_by = [&](auto... xs) {
    int by = -1;
    self->request(pool, std::chrono::seconds(5), xs...)
        .receive([&](nlohmann::json& j) { by = j.get<int>(); }, [&](caf::error&) { by = -2; });
    return by;
  };
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(served_by(persist_atom::value, write_op{"accept", {}}), 0);
    EXPECT_EQ(served_by(persist_atom::value, write_op{"result", {}}), 1);
  }
  int first = served_by(persist_atom::value, write_op{"inbound", {}});
  int second = served_by(persist_atom::value, write_op{"inbound", {}});
  EXPECT_NE(first, second);
  EXPECT_GE(served_by(42), 0); // not a write: round robin, still served
  self->send_exit(pool, caf::exit_reason::user_shutdown);
}
