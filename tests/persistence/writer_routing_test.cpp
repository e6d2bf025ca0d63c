// Writes of a pinned kind always meet in the same writer's batches; the rest spread round robin.
#include "persistence/writer_routing.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "persistence/messages.hpp"

using parley::persistence::persist_atom;
using parley::persistence::write_op;
using parley::persistence::writer_routing;

TEST(WriterRouting, PinnedKindsAlwaysGoToTheirWriterOthersTakeTurns) {
  writer_routing r{{{"accept", 0}, {"result", 1}, {"far", 7}}};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(r.pick("accept", 2), 0u);
    EXPECT_EQ(r.pick("result", 2), 1u);
    EXPECT_EQ(r.pick("far", 2), 1u); // modulo the pool's size
  }
  EXPECT_NE(r.pick("other", 2), r.pick("other", 2));
  EXPECT_EQ(r.pick("accept", 1), 0u);
  EXPECT_EQ(r.pick("result", 1), 0u);
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
      writer_routing{{{"accept", 0}, {"result", 1}}}.policy());
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
