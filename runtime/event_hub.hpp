#pragma once
// The node's live events of tenants, for GET /v1/events (Server-Sent Events). Publishers (the
// conversation, channel and edge actors) hand events to the hub; subscribers (open event
// streams) receive those of their tenant, in order. While a tenant has subscribers, and for a
// while after the last one left, its latest events are kept in a bounded buffer, so a client
// that reconnects with Last-Event-ID resumes without a gap, or is told plainly that it missed
// some (a `stream.resync` event). A tenant nobody listens to costs a publisher one hash look-up
// (wants()) and no event is built for it.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include <nlohmann/json_fwd.hpp>

namespace parley::runtime {

/// One event as it goes out.
struct live_event {
  std::string id;   ///< "<unix ms>-<n>": increases on this node, also across restarts
  std::string type; ///< "message.created", "message.status", "conversation.updated", ...
  std::string wire; ///< the SSE frame: "id: ..\nevent: ..\ndata: <json>\n\n"
};

/// An event id taken apart; ordered as the hub issues them.
struct event_id {
  int64_t ms = 0;
  int64_t n = 0;
  auto operator<=>(const event_id&) const = default;
  std::string str() const;
  /// nullopt unless `text` is "<ms>-<n>" with both parts decimal and in range.
  static std::optional<event_id> parse(std::string_view text);
};

struct event_hub_options {
  size_t replay_events = 1000; ///< kept per listened-to tenant for Last-Event-ID
  /// How long a tenant's buffer outlives its last subscriber (a reconnect within it resumes).
  std::chrono::milliseconds keep_after_last_subscriber{std::chrono::minutes(5)};
  /// A replay larger than this is a resync instead: it must fit what a stream may have queued
  /// (http::server_options::stream_queue_limit, 1 MiB), or every reconnect would be cut again.
  size_t replay_bytes = 512 * 1024;
};

class event_hub {
public:
  /// Called under the hub's lock, in event order: must be quick and must not call the hub.
  using subscriber = std::function<void(const live_event&)>;
  using clock_fn = std::function<std::chrono::steady_clock::time_point()>;
  using wall_ms_fn = std::function<int64_t()>;

  explicit event_hub(event_hub_options opts = {}, clock_fn now = nullptr,
                     wall_ms_fn wall_ms = nullptr);
  ~event_hub();
  event_hub(const event_hub&) = delete;
  event_hub& operator=(const event_hub&) = delete;

  /// True while events of `tenant_id` are listened to or kept for a reconnect.
  bool wants(const std::string& tenant_id) const;

  /// Issues the next id and hands the event to the tenant's subscribers; no effect unless
  /// wants(tenant_id).
  void publish(const std::string& tenant_id, std::string_view type, const nlohmann::json& data);

  struct subscription {
    uint64_t id = 0;
    bool resumed = true; ///< false when events after `last_event_id` are no longer kept
  };
  /// Registers `fn` for the tenant's events. With a `last_event_id` (already validated with
  /// event_id::parse), first replays the kept events after it, or, when some of those are no
  /// longer kept (or the id is one this node never issued, or the replay would exceed
  /// replay_bytes), only a `stream.resync` event (carrying the latest id); then live ones. Atomic:
  /// nothing published meanwhile is missed or doubled.
  subscription subscribe(const std::string& tenant_id, std::optional<event_id> last_event_id,
                         subscriber fn);
  void unsubscribe(const std::string& tenant_id, uint64_t subscription_id);

  /// Takes one of the tenant's `limit` stream places, held from before a stream's response
  /// opens until it closes (release_stream), so that streams opening at the same moment cannot
  /// pass the limit together. False when all are taken.
  bool reserve_stream(const std::string& tenant_id, size_t limit);
  void release_stream(const std::string& tenant_id);
  size_t streams_reserved(const std::string& tenant_id) const;

  size_t subscribers() const;
  size_t subscribers_of(const std::string& tenant_id) const;
  size_t tenants_kept() const;

private:
  struct tenant_events;
  event_id next_id();    // under mtx_
  void forget_expired(); // under mtx_

  event_hub_options opts_;
  clock_fn now_;
  wall_ms_fn wall_ms_;
  mutable std::mutex mtx_;
  std::unordered_map<std::string, std::unique_ptr<tenant_events>> tenants_;
  event_id last_{};
  uint64_t next_subscription_ = 1;
  size_t subscribers_ = 0;
  std::unordered_map<std::string, size_t> reserved_; ///< stream places taken, per tenant
};

} // namespace parley::runtime
