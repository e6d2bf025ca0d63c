#include "actors/conversation_index.hpp"

namespace parley {

caf::actor conversation_index::find(const key& k) const {
  auto it = by_key_.find(k);
  return it == by_key_.end() ? caf::actor{} : it->second;
}

void conversation_index::insert(key k, caf::actor conversation) {
  auto addr = conversation.address();
  auto [it, inserted] = by_key_.emplace(std::move(k), std::move(conversation));
  if (inserted) // unordered_map nodes never move, so the pointer stays valid until erased
    by_addr_.emplace(std::move(addr), &it->first);
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
