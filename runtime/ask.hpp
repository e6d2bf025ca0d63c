#pragma once
// Bridges code outside the actor world (Beast's io threads) to actors without blocking: a
// short-lived actor makes the request and hands the answer to a callback, then ends. The
// callbacks run on a CAF worker thread and must not block either.
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include "runtime/errors.hpp"

namespace parley::runtime {

/// Sends `xs...` to `target` and calls `on_ok(Result&)` with the reply or `on_err(caf::error&)`
/// (including CAF's request_timeout after `timeout`, which code_of() maps to errc::timeout).
template <class Result, class OnOk, class OnErr, class... Ts>
void ask(caf::actor_system& sys, caf::actor target, caf::timespan timeout, OnOk on_ok,
         OnErr on_err, Ts... xs) {
  if (!target) {
    // Only during start-up or a restart: the client should simply retry.
    auto err = make_error(errc::timeout, "the service is starting or restarting; retry shortly");
    on_err(err);
    return;
  }
  // The target travels as a spawn argument: CAF 0.17 dereferences a null argument tuple when a
  // function actor is spawned without arguments (UBSan flags it).
  sys.spawn(
    [timeout, on_ok = std::move(on_ok), on_err = std::move(on_err),
     xs...](caf::event_based_actor* self, const caf::actor& target) mutable {
      self->request(target, timeout, std::move(xs)...)
        .then(
          [self, on_ok](Result& r) mutable {
            on_ok(r);
            self->quit();
          },
          [self, on_err](caf::error& e) mutable {
            on_err(e);
            self->quit();
          });
    },
    std::move(target));
}

} // namespace parley::runtime
