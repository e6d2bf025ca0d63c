// What persistence's detached actors rely on to release OpenSSL's per-thread state
// (crypto::release_thread_state): in CAF 0.17 a functor attached to a detached actor runs on that
// actor's own thread when it ends, before the actor system stops waiting for the thread.
#include <future>
#include <thread>

#include <caf/all.hpp>
#include <gtest/gtest.h>

namespace {

using where_atom = caf::atom_constant<caf::atom("where")>;

struct thread_ids {
  std::promise<std::thread::id> handler;
  std::promise<std::thread::id> at_exit;
};

caf::behavior detached_probe(caf::event_based_actor* self, thread_ids* ids) {
  self->attach_functor([ids] { ids->at_exit.set_value(std::this_thread::get_id()); });
  return {[ids](where_atom) { ids->handler.set_value(std::this_thread::get_id()); }};
}

TEST(DetachedExit, AttachedFunctorRunsOnTheActorsOwnThread) {
  thread_ids ids;
  auto handler = ids.handler.get_future();
  auto at_exit = ids.at_exit.get_future();
  {
    caf::actor_system_config cfg;
    cfg.set("logger.verbosity", caf::atom("quiet"));
    caf::actor_system sys{cfg};
    auto probe = sys.spawn<caf::detached>(detached_probe, &ids);
    caf::anon_send(probe, where_atom::value);
    ASSERT_EQ(handler.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    caf::anon_send_exit(probe, caf::exit_reason::user_shutdown);
    ASSERT_EQ(at_exit.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  }
  auto on = handler.get();
  EXPECT_NE(on, std::this_thread::get_id());
  EXPECT_EQ(at_exit.get(), on);
}

} // namespace
