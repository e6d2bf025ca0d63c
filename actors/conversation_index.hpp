#pragma once
// A tenant's index of its active conversation actors: by (channel, contact) to route each message,
// and by actor address to forget an actor when it ends (passivated or crashed). There is one entry
// per active conversation, a million per node by design, so keys hold the channel in 16 bytes,
// and the address side points into the first map instead of copying keys.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>

#include "domain/uuid.hpp"

namespace parley {

class conversation_index {
public:
  struct key {
    domain::uuid channel;
    std::string wa_id; ///< short enough for the string's inline buffer (phone numbers, BSUIDs)
    bool operator==(const key&) const = default;
  };

  /// The live actor of (channel, wa_id), or an invalid handle.
  caf::actor find(const key& k) const;

  /// Indexes `conversation` under `k` (which must not be indexed yet).
  void insert(key k, caf::actor conversation);

  /// Forgets the actor at `addr`; its key, if it was indexed.
  std::optional<key> erase(const caf::actor_addr& addr);

  size_t size() const { return by_key_.size(); }

private:
  struct key_hash {
    size_t operator()(const key& k) const {
      return k.channel.hash() ^ (std::hash<std::string>{}(k.wa_id) * 0x9e3779b97f4a7c15ULL);
    }
  };
  std::unordered_map<key, caf::actor, key_hash> by_key_;
  std::unordered_map<caf::actor_addr, const key*> by_addr_;
};

} // namespace parley
