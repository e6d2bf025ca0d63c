// Every status handler reports its actor's mailbox depth (the actor tree, /metrics) through
// CAF 0.17's mailbox().size(), which first moves newly arrived messages into the actor's queue.
// When that queue is empty, CAF's header code casts the queue's sentinel node to a message
// (task_queue::back() in lifo_append): harmless, but UBSan's vptr check reports it and the
// sanitizer pass's parley exited with it mid-test (test_outbound, 2026-11-23). This reproduces
// the situation deterministically; deploy/local/ubsan.supp holds the suppression.
#include <future>

#include <caf/all.hpp>
#include <gtest/gtest.h>

namespace {

using probe_atom = caf::atom_constant<caf::atom("probe")>;
using filler_atom = caf::atom_constant<caf::atom("filler")>;

caf::behavior depth_probe(caf::event_based_actor* self, std::promise<size_t>* depth) {
  return {
      [self, depth](probe_atom) {
        // The probe was the only message: the queue is empty, the new ones wait in the inbox.
        for (int i = 0; i < 3; ++i)
          self->send(self, filler_atom::value);
        depth->set_value(self->mailbox().size());
      },
      [](filler_atom) {},
  };
}

TEST(MailboxDepth, CountsMessagesThatArrivedWhileTheQueueWasEmpty) {
  std::promise<size_t> depth;
  auto got = depth.get_future();
  {
    caf::actor_system_config cfg;
    cfg.set("logger.verbosity", caf::atom("quiet"));
    caf::actor_system sys{cfg};
    auto probe = sys.spawn(depth_probe, &depth);
    caf::anon_send(probe, probe_atom::value);
    ASSERT_EQ(got.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    caf::anon_send_exit(probe, caf::exit_reason::user_shutdown);
  }
  EXPECT_EQ(got.get(), 3u);
}

} // namespace
