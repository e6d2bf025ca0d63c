#include "runtime/supervisor.hpp"

#include <deque>
#include <map>

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/stateful_actor.hpp>

#include "runtime/actor_slot.hpp"
#include "runtime/atoms.hpp"
#include "runtime/errors.hpp"
#include "runtime/logging.hpp"

namespace parley::runtime {

namespace {

struct child_slot {
  child_spec spec;
  caf::actor handle;
};

struct supervisor_state {
  supervisor_options opts;
  /// Children in start order (one_for_all restarts them in this order).
  std::vector<child_slot> children;
  /// Times of recent restarts, for the intensity check.
  std::deque<caf::actor_clock::time_point> restarts;
  log::logger logger{"supervisor"};
  static inline const char* name = "supervisor";

  std::string path() const { return actor_info{"supervisor", opts.id, opts.parent_path}.path(); }
};

using self_ptr = caf::stateful_actor<supervisor_state>*;

child_slot* find_by_addr(self_ptr self, const caf::actor_addr& addr) {
  for (auto& c : self->state.children)
    if (c.handle && c.handle.address() == addr)
      return &c;
  return nullptr;
}

child_slot* find_by_id(self_ptr self, const std::string& id) {
  for (auto& c : self->state.children)
    if (c.spec.id == id)
      return &c;
  return nullptr;
}

void start(self_ptr self, child_slot& slot) {
  slot.handle = slot.spec.start(self->system(), self->state.path());
  if (slot.handle)
    self->link_to(slot.handle);
}

/// Records a restart; false when the intensity limit is exceeded (time to escalate).
bool admit_restart(self_ptr self) {
  auto& st = self->state;
  auto now = self->clock().now();
  while (!st.restarts.empty() && now - st.restarts.front() > st.opts.window)
    st.restarts.pop_front();
  if (st.restarts.size() >= st.opts.max_restarts)
    return false;
  st.restarts.push_back(now);
  return true;
}

void stop_quietly(self_ptr self, child_slot& slot) {
  if (!slot.handle)
    return;
  self->unlink_from(slot.handle);
  self->send_exit(slot.handle, caf::exit_reason::kill);
  slot.handle = nullptr;
}

void on_child_exit(self_ptr self, child_slot& slot, const caf::error& reason) {
  auto& st = self->state;
  bool abnormal = static_cast<bool>(reason);
  bool restart = slot.spec.restart == restart_policy::permanent ||
                 (slot.spec.restart == restart_policy::transient && abnormal);
  slot.handle = nullptr;
  if (!restart) {
    auto id = slot.spec.id;
    std::erase_if(st.children, [&](const child_slot& c) { return c.spec.id == id; });
    return;
  }
  if (!admit_restart(self)) {
    st.logger.error("restart intensity exceeded, escalating",
                    {{"supervisor", st.opts.id},
                     {"child", slot.spec.id},
                     {"kind", slot.spec.kind},
                     {"max_restarts", st.opts.max_restarts}});
    self->quit(make_error(errc::internal, "supervisor " + st.opts.id +
                                              ": restart intensity exceeded by " + slot.spec.kind +
                                              " " + slot.spec.id));
    return;
  }
  st.logger.warn("restarting child", {{"supervisor", st.opts.id},
                                      {"child", slot.spec.id},
                                      {"kind", slot.spec.kind},
                                      {"reason", self->system().render(reason)}});
  auto note = [&](const child_slot& c) {
    if (st.opts.tree)
      st.opts.tree->note_restart(actor_info{c.spec.kind, c.spec.id, st.path()}.path());
  };
  if (st.opts.strat == strategy::one_for_one) {
    note(slot);
    start(self, slot);
    return;
  }
  // one_for_all: stop the siblings (unlinked first, so their exits do not come back to us),
  // then start everyone again in the original order.
  for (auto& c : st.children)
    stop_quietly(self, c);
  for (auto& c : st.children) {
    note(c);
    start(self, c);
  }
}

caf::behavior supervisor_impl(self_ptr self, supervisor_options opts,
                              std::vector<child_spec> specs) {
  self->state.opts = std::move(opts);
  if (self->state.opts.tree)
    self->state.opts.tree->enroll(
        self, {"supervisor", self->state.opts.id, self->state.opts.parent_path});
  self->set_exit_handler([self](caf::exit_msg& msg) {
    if (auto* slot = find_by_addr(self, msg.source)) {
      on_child_exit(self, *slot, msg.reason);
      return;
    }
    // Not a child: our parent (or a linked peer) ended. Follow it, taking the children along.
    if (msg.reason)
      self->quit(msg.reason);
  });
  for (auto& s : specs) {
    self->state.children.push_back(child_slot{std::move(s), nullptr});
    start(self, self->state.children.back());
  }
  return {
      [self](start_child_atom, child_spec& spec) -> caf::result<caf::actor> {
        if (auto* existing = find_by_id(self, spec.id); existing && existing->handle)
          return existing->handle;
        self->state.children.push_back(child_slot{std::move(spec), nullptr});
        auto& slot = self->state.children.back();
        start(self, slot);
        if (!slot.handle) {
          auto id = slot.spec.id;
          self->state.children.pop_back();
          return make_error(errc::internal, "could not start child " + id);
        }
        return slot.handle;
      },
      [self](find_child_atom, const std::string& id) -> caf::result<caf::actor> {
        if (auto* c = find_by_id(self, id); c && c->handle)
          return c->handle;
        return make_error(errc::not_found, "no child " + id);
      },
      [self](stop_child_atom, const std::string& id) {
        if (auto* c = find_by_id(self, id)) {
          stop_quietly(self, *c);
          std::erase_if(self->state.children, [&](const child_slot& x) { return x.spec.id == id; });
          return true;
        }
        return false;
      },
      [self](status_atom) {
        return nlohmann::json{{"state", "running"},
                              {"children", self->state.children.size()},
                              {"mailbox", self->mailbox().size()}};
      },
  };
}

} // namespace

child_spec
published_child(std::string id, std::string kind, actor_slot* slot,
                std::function<caf::actor(caf::actor_system&, const std::string&)> spawn) {
  child_spec spec;
  spec.id = std::move(id);
  spec.kind = std::move(kind);
  spec.restart = restart_policy::permanent;
  spec.start = [slot, spawn = std::move(spawn)](caf::actor_system& sys, const std::string& parent) {
    auto a = spawn(sys, parent);
    slot->set(a);
    return a;
  };
  return spec;
}

caf::actor spawn_supervisor(caf::actor_system& sys, supervisor_options opts,
                            std::vector<child_spec> children) {
  return sys.spawn(supervisor_impl, std::move(opts), std::move(children));
}

} // namespace parley::runtime
