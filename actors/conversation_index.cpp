#include "actors/conversation_index.hpp"

namespace parley {

caf::actor conversation_index::find(const key& k) const {
  auto it = by_key_.find(k);
  return it == by_key_.end() ? caf::actor{} : it->second.actor;
}

caf::actor conversation_index::touch(const key& k, time_point now) {
  auto it = by_key_.find(k);
  if (it == by_key_.end())
    return {};
  it->second.last_routed = now;
  return it->second.actor;
}

void conversation_index::insert(key k, caf::actor conversation, time_point now) {
  auto addr = conversation.address();
  auto [it, inserted] = by_key_.emplace(std::move(k), entry{std::move(conversation), now});
  if (inserted) // unordered_map nodes never move, so the pointer stays valid until erased
    by_addr_.emplace(std::move(addr), &it->first);
}

std::vector<caf::actor> conversation_index::idle_since(time_point before) const {
  std::vector<caf::actor> out;
  for (const auto& [k, e] : by_key_)
    if (e.last_routed < before)
      out.push_back(e.actor);
  return out;
}

std::optional<conversation_index::key> conversation_index::erase(const caf::actor_addr& addr) {
  auto it = by_addr_.find(addr);
  if (it == by_addr_.end())
    return std::nullopt;
  auto k = *it->second;
  by_key_.erase(k);
  by_addr_.erase(it);
  return k;
}

} // namespace parley
