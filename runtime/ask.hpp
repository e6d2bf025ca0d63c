#pragma once
// Bridges code outside the actor world (Beast's I/O threads) to actors without blocking: one of
// the node's relay actors makes the request and hands the answer to a callback. The callbacks run
// on a CAF worker thread and must not block either.
#include <utility>

#include <caf/actor.hpp>

#include "runtime/errors.hpp"
#include "runtime/relay_pool.hpp"

namespace parley::runtime {

/// Sends `xs...` to `target` and calls `on_ok(Result&)` with the reply or `on_err(caf::error&)`
/// (including CAF's request_timeout after `timeout`, which code_of() maps to errc::timeout).
template <class Result, class OnOk, class OnErr, class... Ts>
void ask(relay_pool& relays, caf::actor target, caf::timespan timeout, OnOk on_ok, OnErr on_err,
         Ts... xs) {
  if (!target) {
    // Only during start-up or a restart: the client should simply retry.
    auto err = make_error(errc::timeout, "the service is starting or restarting; retry shortly");
    on_err(err);
    return;
  }
  relays.run([target = std::move(target), timeout, on_ok = std::move(on_ok),
              on_err = std::move(on_err), xs...](relay_actor* self) mutable {
    auto ok = [on_ok](Result& r) mutable { run_guarded("ask answer", [&] { on_ok(r); }); };
    auto err = [on_err](caf::error& e) mutable { run_guarded("ask error", [&] { on_err(e); }); };
    self->state.deadlines.then<Result>(self, self->request(target, caf::infinite, std::move(xs)...),
                                       timeout, std::move(ok), std::move(err));
  });
}

} // namespace parley::runtime
