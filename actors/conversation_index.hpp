#pragma once
// A tenant's index of its active conversation actors: by (channel, contact) to route each message,
// and by actor address to forget an actor when it ends (passivated or crashed). There is one entry
// per active conversation, a million per node by design, so keys hold the channel in 16 bytes,
// and the address side points into the first map instead of copying keys. Each entry remembers
// when a message was last routed to it: the tenant passivates idle conversations from here, one
// periodic sweep per tenant instead of a timer per actor (each timer is a trip through CAF's clock
// thread, ~6 % of parley's CPU when every webhook activated a conversation).
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/actor_clock.hpp>

#include "domain/uuid.hpp"

namespace parley {

class conversation_index {
public:
  struct key {
    domain::uuid channel;
    std::string wa_id; ///< short enough for the string's inline buffer (phone numbers, BSUIDs)
    bool operator==(const key&) const = default;
  };

  using time_point = caf::actor_clock::time_point;

  /// The live actor of (channel, wa_id), or an invalid handle.
  caf::actor find(const key& k) const;

  /// find(), and notes that a message is routed to it at `now`.
  caf::actor touch(const key& k, time_point now);

  /// Indexes `conversation` under `k` (which must not be indexed yet), routed to at `now`.
  void insert(key k, caf::actor conversation, time_point now);

  /// The actors nothing was routed to since `before` (they may be asked to passivate).
  std::vector<caf::actor> idle_since(time_point before) const;

  /// Forgets the actor at `addr`; its key, if it was indexed.
  std::optional<key> erase(const caf::actor_addr& addr);

  size_t size() const { return by_key_.size(); }

private:
  struct key_hash {
    size_t operator()(const key& k) const {
      return k.channel.hash() ^ (std::hash<std::string>{}(k.wa_id) * 0x9e3779b97f4a7c15ULL);
    }
  };
  struct entry {
    caf::actor actor;
    time_point last_routed;
  };
  std::unordered_map<key, entry, key_hash> by_key_;
  std::unordered_map<caf::actor_addr, const key*> by_addr_;
};

} // namespace parley
