#include "runtime/relay_pool.hpp"

#include <exception>
#include <stdexcept>

#include <caf/send.hpp>

#include "runtime/logging.hpp"

namespace parley::runtime {

void run_guarded(const char* what, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    log::logger{"relay"}.error("callback threw", {{"in", what}, {"error", e.what()}});
  } catch (...) {
    log::logger{"relay"}.error("callback threw", {{"in", what}, {"error", "unknown exception"}});
  }
}

relay_pool::relay_pool(caf::actor_system& sys, size_t relays)
    : sys_(sys) {
  if (relays == 0)
    throw std::invalid_argument("relay_pool needs at least one relay");
  relays_.reserve(relays);
  for (size_t i = 0; i < relays; ++i)
    // The index travels as a spawn argument: CAF 0.17 dereferences a null argument tuple when a
    // function actor is spawned without arguments (UBSan flags it).
    relays_.push_back(sys.spawn(
        [](relay_actor* self, size_t) -> caf::behavior {
          return {[self](relay_job& job) { run_guarded("relay job", [&] { job(self); }); },
                  [self](deadline_tick_atom) { self->state.deadlines.on_tick(self); }};
        },
        i));
}

relay_pool::~relay_pool() {
  stop();
}

void relay_pool::run(relay_job job) {
  if (stopped_.load(std::memory_order_acquire))
    return;
  auto i = next_.fetch_add(1, std::memory_order_relaxed) % relays_.size();
  caf::anon_send(relays_[i], std::move(job));
}

void relay_pool::stop() {
  if (stopped_.exchange(true))
    return;
  for (auto& relay : relays_)
    caf::anon_send_exit(relay, caf::exit_reason::user_shutdown);
}

} // namespace parley::runtime
