#pragma once
// Long-lived actors that make requests on behalf of code outside the actor world (Beast's I/O
// threads, the rate limiter's Redis thread). Spawning a one-shot actor per request, as ask() did
// before, cost ~12 us of CPU per round trip against ~5 us through a relay (bench/ask_relay):
// every webhook and API call paid the difference.
#include <atomic>
#include <cstddef>
#include <functional>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/stateful_actor.hpp>

#include "runtime/deadline_book.hpp"

namespace parley::runtime {

struct relay_state {
  deadline_book deadlines; ///< of its requests to actors of this node
  static inline const char* name = "relay";
};
using relay_actor = caf::stateful_actor<relay_state>;

/// What a relay runs: it may send requests as `self` and handle their answers in callbacks.
using relay_job = std::function<void(relay_actor* self)>;

/// A fixed set of relay actors, jobs spread over them in turn. Jobs run on CAF worker threads
/// and must not block. A job or callback that throws is logged and does not take its relay
/// down (the other requests in flight on it would be lost).
class relay_pool {
public:
  relay_pool(caf::actor_system& sys, size_t relays);
  ~relay_pool();
  relay_pool(const relay_pool&) = delete;
  relay_pool& operator=(const relay_pool&) = delete;

  caf::actor_system& system() { return sys_; }

  /// Runs `job` in one of the relays. After stop(), jobs are dropped.
  void run(relay_job job);

  /// Ends the relays (their answers still in flight are dropped). Call once nothing may run
  /// jobs any more, before waiting for the actor system's actors. Idempotent.
  void stop();

private:
  caf::actor_system& sys_;
  std::vector<caf::actor> relays_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> stopped_{false};
};

/// Calls `fn(args...)` and logs (instead of propagating) what it throws: callbacks run inside a
/// relay shared by many requests.
void run_guarded(const char* what, const std::function<void()>& fn);

} // namespace parley::runtime

// Relay jobs are local closures and never cross the network.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::runtime::relay_job)
