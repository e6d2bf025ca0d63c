#include "runtime/actor_tree.hpp"

#include <caf/abstract_actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/local_actor.hpp>

namespace parley::runtime {

void actor_tree::enroll(caf::local_actor* self, actor_info info) {
  auto id = self->id();
  {
    std::lock_guard<std::mutex> guard{mtx_};
    entry e;
    e.handle = self->address();
    e.info = std::move(info);
    e.started = std::chrono::steady_clock::now();
    live_[id] = std::move(e);
  }
  // The tree outlives every actor (it is owned by the node and destroyed after the actor
  // system), so a raw pointer in the cleanup functor is safe.
  self->attach_functor([this, id] { remove(id); });
}

void actor_tree::enroll(const caf::actor& handle, actor_info info) {
  if (!handle)
    return;
  auto id = handle.id();
  {
    std::lock_guard<std::mutex> guard{mtx_};
    entry e;
    e.handle = handle.address();
    e.info = std::move(info);
    e.started = std::chrono::steady_clock::now();
    live_[id] = std::move(e);
  }
  handle->attach_functor([this, id] { remove(id); });
}

void actor_tree::remove(caf::actor_id id) {
  std::lock_guard<std::mutex> guard{mtx_};
  live_.erase(id);
}

void actor_tree::note_restart(const std::string& path) {
  std::lock_guard<std::mutex> guard{mtx_};
  ++restarts_[path];
}

uint64_t actor_tree::restarts(const std::string& path) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = restarts_.find(path);
  return it == restarts_.end() ? 0 : it->second;
}

std::vector<actor_tree::entry> actor_tree::snapshot() const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::vector<entry> out;
  out.reserve(live_.size());
  for (const auto& [id, e] : live_) {
    out.push_back(e);
    auto r = restarts_.find(e.info.path());
    if (r != restarts_.end())
      out.back().restarts = r->second;
  }
  return out;
}

size_t actor_tree::size() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return live_.size();
}

std::map<std::string, size_t> actor_tree::count_by_kind() const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::map<std::string, size_t> out;
  for (const auto& [id, e] : live_)
    ++out[e.info.kind];
  return out;
}

} // namespace parley::runtime
