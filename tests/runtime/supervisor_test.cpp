// Supervision semantics on CAF's deterministic test coordinator: the clock only moves when the
// test advances it, so restart windows are exact and no test sleeps.
#include <utility>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <gtest/gtest.h>

#include "runtime/actor_tree.hpp"
#include "runtime/atoms.hpp"
#include "runtime/supervisor.hpp"

using namespace parley;
using namespace parley::runtime;
using namespace std::chrono_literals;

namespace {

struct test_config : caf::actor_system_config {
  test_config() {
    set("scheduler.policy", caf::atom("testing"));
    set("logger.verbosity", caf::atom("quiet"));
  }
};

/// A child whose every incarnation is numbered, so the test can see restarts.
child_spec numbered_child(std::string id, std::shared_ptr<int> incarnations,
                          restart_policy policy = restart_policy::permanent) {
  child_spec spec;
  spec.id = id;
  spec.kind = "worker";
  spec.restart = policy;
  spec.start = [incarnations](caf::actor_system& sys, const std::string&) {
    int n = ++*incarnations;
    // Arguments instead of captures: CAF 0.17 dereferences a null argument tuple when a
    // function actor is spawned without arguments (UBSan flags it).
    return sys.spawn(
        [](caf::event_based_actor* self, int n) -> caf::behavior {
          return {
              [n](get_atom) { return n; },
              [self](stop_atom) { self->quit(); },
          };
        },
        n);
  };
  return spec;
}

class supervisor_test : public ::testing::Test {
protected:
  test_config cfg;
  caf::actor_system sys{cfg};
  caf::scheduler::test_coordinator& sched =
      dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  actor_tree tree;

  caf::actor child(const caf::actor& sup, const std::string& id) {
    caf::scoped_actor self{sys};
    self->send(sup, find_child_atom::value, id);
    sched.run();
    caf::actor result;
    self->receive([&](caf::actor& a) { result = a; }, [&](caf::error&) {},
                  caf::after(std::chrono::seconds(0)) >> [] {});
    return result;
  }

  int incarnation(const caf::actor& worker) {
    caf::scoped_actor self{sys};
    self->send(worker, get_atom::value);
    sched.run();
    int n = -1;
    self->receive([&](int x) { n = x; }, caf::after(std::chrono::seconds(0)) >> [] {});
    return n;
  }

  void crash(const caf::actor& a) {
    caf::anon_send_exit(a, caf::exit_reason::unhandled_exception);
    sched.run();
  }

  supervisor_options options(std::string id, strategy s = strategy::one_for_one, size_t max = 3) {
    supervisor_options o;
    o.id = std::move(id);
    o.strat = s;
    o.max_restarts = max;
    o.window = std::chrono::seconds(10);
    o.tree = &tree;
    return o;
  }

  void TearDown() override { sched.run(); }
};

} // namespace

TEST_F(supervisor_test, one_for_one_restarts_only_the_crashed_child) {
  auto a = std::make_shared<int>(0);
  auto b = std::make_shared<int>(0);
  auto sup =
      spawn_supervisor(sys, options("root"), {numbered_child("a", a), numbered_child("b", b)});
  sched.run();
  auto first = child(sup, "a");
  ASSERT_TRUE(first);
  EXPECT_EQ(incarnation(first), 1);
  crash(first);
  auto second = child(sup, "a");
  ASSERT_TRUE(second);
  EXPECT_NE(first, second);
  EXPECT_EQ(incarnation(second), 2);
  EXPECT_EQ(*b, 1) << "the sibling must not be restarted";
  EXPECT_EQ(tree.restarts("supervisor:root/worker:a"), 1u);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_F(supervisor_test, one_for_all_restarts_every_child) {
  auto a = std::make_shared<int>(0);
  auto b = std::make_shared<int>(0);
  auto sup = spawn_supervisor(sys, options("root", strategy::one_for_all),
                              {numbered_child("a", a), numbered_child("b", b)});
  sched.run();
  crash(child(sup, "a"));
  EXPECT_EQ(*a, 2);
  EXPECT_EQ(*b, 2);
  EXPECT_EQ(incarnation(child(sup, "b")), 2);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_F(supervisor_test, transient_child_ending_normally_is_not_restarted) {
  auto a = std::make_shared<int>(0);
  auto sup =
      spawn_supervisor(sys, options("root"), {numbered_child("a", a, restart_policy::transient)});
  sched.run();
  caf::anon_send(child(sup, "a"), stop_atom::value);
  sched.run();
  EXPECT_FALSE(child(sup, "a"));
  EXPECT_EQ(*a, 1);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_F(supervisor_test, crashing_faster_than_the_intensity_escalates) {
  auto a = std::make_shared<int>(0);
  auto sup =
      spawn_supervisor(sys, options("root", strategy::one_for_one, 2), {numbered_child("a", a)});
  sched.run();
  caf::error exit_reason;
  bool down = false;
  auto watcher = sys.spawn(
      [&](caf::event_based_actor* self, caf::actor watched) -> caf::behavior {
        self->monitor(watched);
        self->set_down_handler([&](caf::down_msg& msg) {
          down = true;
          exit_reason = msg.reason;
        });
        return {[](int) {}};
      },
      sup);
  sched.run();
  crash(child(sup, "a")); // restart 1
  crash(child(sup, "a")); // restart 2
  EXPECT_FALSE(down);
  crash(child(sup, "a")); // third crash within the window: give up
  EXPECT_TRUE(down);
  EXPECT_TRUE(static_cast<bool>(exit_reason));
  EXPECT_EQ(*a, 3);
  caf::anon_send_exit(watcher, caf::exit_reason::user_shutdown);
}

TEST_F(supervisor_test, restarts_outside_the_window_do_not_count) {
  auto a = std::make_shared<int>(0);
  auto sup =
      spawn_supervisor(sys, options("root", strategy::one_for_one, 2), {numbered_child("a", a)});
  sched.run();
  for (int i = 0; i < 5; ++i) {
    crash(child(sup, "a"));
    sched.advance_time(std::chrono::seconds(6));
    sched.run();
  }
  auto alive = child(sup, "a");
  ASSERT_TRUE(alive);
  EXPECT_EQ(incarnation(alive), 6);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_F(supervisor_test, escalation_restarts_the_child_supervisor_under_its_parent) {
  auto leaf = std::make_shared<int>(0);
  auto inner_starts = std::make_shared<int>(0);
  child_spec inner;
  inner.id = "inner";
  inner.kind = "supervisor";
  inner.start = [this, leaf, inner_starts](caf::actor_system& s, const std::string& parent) {
    ++*inner_starts;
    auto o = options("inner", strategy::one_for_one, 1);
    o.parent_path = parent;
    return spawn_supervisor(s, o, {numbered_child("leaf", leaf)});
  };
  auto root = spawn_supervisor(sys, options("root", strategy::one_for_one, 5), {inner});
  sched.run();
  auto inner_sup = child(root, "inner");
  crash(child(inner_sup, "leaf")); // inner restarts leaf once
  crash(child(inner_sup, "leaf")); // over inner's intensity: inner exits, root restarts it
  EXPECT_EQ(*inner_starts, 2);
  auto new_inner = child(root, "inner");
  ASSERT_TRUE(new_inner);
  EXPECT_NE(new_inner, inner_sup);
  EXPECT_TRUE(child(new_inner, "leaf"));
  caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
}

TEST_F(supervisor_test, children_end_with_their_supervisor) {
  auto a = std::make_shared<int>(0);
  auto sup = spawn_supervisor(sys, options("root"), {numbered_child("a", a)});
  sched.run();
  auto worker = child(sup, "a");
  bool down = false;
  auto watcher = sys.spawn(
      [&](caf::event_based_actor* self, caf::actor watched) -> caf::behavior {
        self->monitor(watched);
        self->set_down_handler([&](caf::down_msg&) { down = true; });
        return {[](int) {}};
      },
      worker);
  sched.run();
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  sched.run();
  EXPECT_TRUE(down);
  caf::anon_send_exit(watcher, caf::exit_reason::user_shutdown);
}

TEST_F(supervisor_test, start_child_is_idempotent_by_id) {
  auto a = std::make_shared<int>(0);
  auto sup = spawn_supervisor(sys, options("root"), {});
  sched.run();
  caf::scoped_actor self{sys};
  self->send(sup, start_child_atom::value, numbered_child("x", a));
  self->send(sup, start_child_atom::value, numbered_child("x", a));
  sched.run();
  caf::actor first, second;
  self->receive([&](caf::actor& h) { first = h; });
  self->receive([&](caf::actor& h) { second = h; });
  EXPECT_EQ(first, second);
  EXPECT_EQ(*a, 1);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}
