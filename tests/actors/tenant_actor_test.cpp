// The tenant actor under its supervisor, on the real scheduler against a real PostgreSQL:
// activation on demand, state rebuilt from the database after a crash, and a tenant that does
// not exist ending cleanly instead of crash-looping.
#include <caf/all.hpp>
#include <gtest/gtest.h>

#include "actors/interfaces.hpp"
#include "actors/tenant.hpp"
#include "persistence/db_pool.hpp"
#include "persistence/migrations.hpp"
#include "runtime/errors.hpp"
#include "tests/persistence/pg_support.hpp"

using namespace parley;
using namespace std::chrono_literals;

namespace {

class tenant_actor_test : public test::pg_test {
protected:
  void SetUp() override {
    pg_test::SetUp();
    persistence::migrate(db_->url());
    tenant_id = test::sql_value(db_->url(), "INSERT INTO tenants (name, slug) VALUES ('Acme', "
                                            "'acme') RETURNING id::text");
    pool = stop_later(persistence::spawn_db_pool(*sys_, db_cfg(), metrics_));
    db_slot.set(pool);
    tenant_deps deps;
    deps.db = &db_slot;
    deps.tree = &tree;
    deps.db_timeout = 5s;
    runtime::supervisor_options opts;
    opts.id = "root";
    opts.tree = &tree;
    root = stop_later(
        runtime::spawn_supervisor(*sys_, opts, {tenant_registry_spec(deps, &registry_slot)}));
    // The supervisor starts its children on its first run, on a worker thread.
    ASSERT_TRUE(eventually([&] { return static_cast<bool>(registry_slot.get()); }));
  }

  void TearDown() override {
    db_slot.set(nullptr);
    registry_slot.set(nullptr);
    pg_test::TearDown();
  }

  template <class T, class... Ts>
  caf::expected<T> ask(const caf::actor& target, Ts&&... xs) {
    caf::scoped_actor self{*sys_};
    caf::expected<T> result{caf::error{}};
    self->request(target, 10s, std::forward<Ts>(xs)...)
        .receive([&](T& value) { result = std::move(value); },
                 [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  caf::actor tenant(const std::string& id) {
    auto t = ask<caf::actor>(registry_slot.get(), tenant_atom::value, id);
    EXPECT_TRUE(t) << sys_->render(t.error());
    return t ? *t : caf::actor{};
  }

  /// Waits (bounded) until `pred` holds; actors restart asynchronously on the real scheduler.
  template <class Pred>
  bool eventually(Pred pred) {
    for (int i = 0; i < 200; ++i) {
      if (pred())
        return true;
      std::this_thread::sleep_for(25ms);
    }
    return false;
  }

  std::string tenant_id;
  caf::actor pool;
  caf::actor root;
  runtime::actor_tree tree;
  runtime::actor_slot db_slot, registry_slot;
};

} // namespace

TEST_F(tenant_actor_test, activates_on_first_use_and_loads_its_row) {
  auto t = tenant(tenant_id);
  ASSERT_TRUE(t);
  auto state = ask<nlohmann::json>(t, get_atom::value);
  ASSERT_TRUE(state);
  EXPECT_EQ((*state)["name"], "Acme");
  EXPECT_EQ((*state)["slug"], "acme");
  EXPECT_EQ(tenant(tenant_id), t) << "the registry must hand out the one live activation";
}

TEST_F(tenant_actor_test, a_crashed_tenant_is_restarted_and_rebuilds_its_state_from_postgres) {
  auto first = tenant(tenant_id);
  ASSERT_TRUE(ask<nlohmann::json>(first, get_atom::value));
  // Changed behind the actor's back: only a reload from PostgreSQL can pick this up.
  test::sql_exec(db_->url(),
                 "UPDATE tenants SET name = 'Acme Renamed' WHERE id = '" + tenant_id + "'");
  caf::anon_send_exit(first, caf::exit_reason::unhandled_exception);
  caf::actor second;
  ASSERT_TRUE(eventually([&] {
    second = tenant(tenant_id);
    return second && second != first;
  }));
  auto state = ask<nlohmann::json>(second, get_atom::value);
  ASSERT_TRUE(state);
  EXPECT_EQ((*state)["name"], "Acme Renamed");
  EXPECT_TRUE(eventually([&] {
    return tree.restarts("supervisor:root/tenant_registry:node/supervisor:tenants/tenant:" +
                         tenant_id) == 1;
  }));
}

TEST_F(tenant_actor_test, updates_go_through_the_actor_and_persist) {
  auto t = tenant(tenant_id);
  auto updated =
      ask<nlohmann::json>(t, update_atom::value, nlohmann::json{{"status", "suspended"}});
  ASSERT_TRUE(updated);
  EXPECT_EQ((*updated)["status"], "suspended");
  EXPECT_EQ(
      test::sql_value(db_->url(), "SELECT status FROM tenants WHERE id = '" + tenant_id + "'"),
      "suspended");
}

TEST_F(tenant_actor_test, an_unknown_tenant_answers_not_found_and_is_not_restarted) {
  std::string ghost = "00000000-0000-4000-8000-000000000000";
  auto t = tenant(ghost);
  ASSERT_TRUE(t);
  auto state = ask<nlohmann::json>(t, get_atom::value);
  ASSERT_FALSE(state);
  EXPECT_EQ(code_of(state.error()), errc::not_found);
  EXPECT_TRUE(eventually([&] {
    for (const auto& e : tree.snapshot())
      if (e.info.kind == "tenant" && e.info.id == ghost)
        return false;
    return true;
  }));
  EXPECT_EQ(
      tree.restarts("supervisor:root/tenant_registry:node/supervisor:tenants/tenant:" + ghost), 0u);
}

TEST_F(tenant_actor_test, a_crashed_registry_is_restarted_and_its_slot_points_to_the_new_one) {
  auto before = registry_slot.get();
  caf::anon_send_exit(before, caf::exit_reason::unhandled_exception);
  ASSERT_TRUE(eventually([&] { return registry_slot.get() != before; }));
  auto t = tenant(tenant_id);
  ASSERT_TRUE(t);
  EXPECT_TRUE(ask<nlohmann::json>(t, get_atom::value));
}
