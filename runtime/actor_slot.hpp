#pragma once
// A stable place holding the current incarnation of a supervised actor. Its child_spec's start
// function stores each new incarnation here, so code outside the actor world (HTTP handlers)
// always reaches the live one after a restart without a look-up round trip.
#include <mutex>

#include <caf/actor.hpp>

namespace parley::runtime {

class actor_slot {
public:
  caf::actor get() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return handle_;
  }
  void set(caf::actor a) {
    std::lock_guard<std::mutex> guard{mtx_};
    handle_ = std::move(a);
  }

private:
  mutable std::mutex mtx_;
  caf::actor handle_;
};

} // namespace parley::runtime
