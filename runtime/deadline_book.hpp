#pragma once
// Request timeouts kept by the requesting actor and checked by one periodic tick, instead of one
// CAF timeout per request. CAF 0.17 registers every request timeout with its clock thread and
// cancels it when the answer comes: two events per request, each waking that thread. Under load
// that was 5-10 % of parley's CPU (docs/performance.md, session 10) for deadlines that almost
// never expire. Here a request costs a hash-map insert and erase; a busy actor's tick costs one
// clock event per `resolution`.
#include <chrono>
#include <cstdint>
#include <unordered_map>
#include <utility>

#include <caf/actor_clock.hpp>
#include <caf/atom.hpp>
#include <caf/duration.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/message_id.hpp>
#include <caf/timespan.hpp>

namespace parley::runtime {

using deadline_tick_atom = caf::atom_constant<caf::atom("dltick")>;

/// The requests of one actor still waiting for their answers, with their deadlines. Lives in
/// the actor's state and is used only from its handlers; the actor must handle
/// `deadline_tick_atom` by calling on_tick().
class deadline_book {
public:
  using time_point = caf::actor_clock::time_point;

  explicit deadline_book(caf::timespan resolution = std::chrono::milliseconds(100))
      : resolution_(resolution) {}

  /// Waits for the answer to the request `h` made by `self` (`h.then(...)`), calling `on_err`
  /// with CAF's own `sec::request_timeout` when none came after `timeout` (up to `resolution`
  /// later).
  template <class Result, class Self, class Handle, class OnOk, class OnErr>
  void then(Self* self, Handle h, caf::timespan timeout, OnOk on_ok, OnErr on_err) {
    auto id = h.id();
    track(self, id, self->clock().now() + timeout);
    h.then(
        [this, id, on_ok = std::move(on_ok)](Result& r) mutable {
          settle(id);
          on_ok(r);
        },
        [this, id, on_err = std::move(on_err)](caf::error& e) mutable {
          settle(id);
          on_err(e);
        });
  }

  /// Times out what is due and keeps ticking while anything is pending.
  void on_tick(caf::event_based_actor* self);

  size_t pending() const { return due_.size(); }

private:
  void track(caf::event_based_actor* self, caf::message_id id, time_point due);
  void settle(caf::message_id id) { due_.erase(id.integer_value()); }

  caf::timespan resolution_;
  std::unordered_map<uint64_t, time_point> due_; ///< response id -> deadline
  bool ticking_ = false;
};

} // namespace parley::runtime
