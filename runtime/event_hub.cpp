#include "runtime/event_hub.hpp"

#include <charconv>
#include <deque>
#include <map>

#include <nlohmann/json.hpp>

namespace parley::runtime {

std::string event_id::str() const {
  return std::to_string(ms) + "-" + std::to_string(n);
}

std::optional<event_id> event_id::parse(std::string_view text) {
  auto dash = text.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == text.size() || text.size() > 40)
    return std::nullopt;
  auto number = [](std::string_view s, int64_t& out) {
    if (s.empty() || s.front() == '+' || s.front() == '-')
      return false;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size();
  };
  event_id id;
  if (!number(text.substr(0, dash), id.ms) || !number(text.substr(dash + 1), id.n))
    return std::nullopt;
  return id;
}

namespace {

/// The event with its SSE frame. dump() writes no newline, so the data is one SSE line; invalid
/// UTF-8 (from a vendor) is replaced rather than thrown on.
live_event make_event(const event_id& id, std::string_view type, const nlohmann::json& data) {
  live_event ev;
  ev.id = id.str();
  ev.type = std::string(type);
  ev.wire = "id: " + ev.id + "\nevent: " + ev.type +
            "\ndata: " + data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
            "\n\n";
  return ev;
}

} // namespace

struct event_hub::tenant_events {
  std::deque<std::pair<event_id, live_event>> kept;
  /// Events at or before this id are not kept: issued before the buffer existed, or evicted.
  event_id floor;
  std::map<uint64_t, subscriber> subscribers;
  std::chrono::steady_clock::time_point idle_since;
};

event_hub::event_hub(event_hub_options opts, clock_fn now, wall_ms_fn wall_ms)
    : opts_(opts)
    , now_(now ? std::move(now) : [] { return std::chrono::steady_clock::now(); })
    , wall_ms_(wall_ms ? std::move(wall_ms) : [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    }) {
  opts_.replay_events = std::max<size_t>(opts_.replay_events, 1);
}

event_hub::~event_hub() = default;

event_id event_hub::next_id() {
  // Wall-clock milliseconds keep ids increasing across restarts (a client's Last-Event-ID from
  // before one is then recognised as older than everything kept); the counter keeps them
  // increasing within a millisecond and when the clock steps back.
  auto ms = wall_ms_();
  if (ms > last_.ms)
    last_ = {ms, 0};
  else
    ++last_.n;
  return last_;
}

void event_hub::forget_expired() {
  auto now = now_();
  for (auto it = tenants_.begin(); it != tenants_.end();) {
    auto& t = *it->second;
    if (t.subscribers.empty() && now - t.idle_since >= opts_.keep_after_last_subscriber)
      it = tenants_.erase(it);
    else
      ++it;
  }
}

bool event_hub::wants(const std::string& tenant_id) const {
  std::lock_guard lk(mtx_);
  return tenants_.count(tenant_id) > 0;
}

void event_hub::publish(const std::string& tenant_id, std::string_view type,
                        const nlohmann::json& data) {
  std::lock_guard lk(mtx_);
  auto it = tenants_.find(tenant_id);
  if (it == tenants_.end())
    return;
  auto& t = *it->second;
  if (t.subscribers.empty() && now_() - t.idle_since >= opts_.keep_after_last_subscriber) {
    tenants_.erase(it);
    return;
  }
  auto id = next_id();
  auto ev = make_event(id, type, data);
  for (auto& [_, fn] : t.subscribers)
    fn(ev);
  t.kept.emplace_back(id, std::move(ev));
  while (t.kept.size() > opts_.replay_events) {
    t.floor = t.kept.front().first;
    t.kept.pop_front();
  }
}

event_hub::subscription event_hub::subscribe(const std::string& tenant_id,
                                             std::optional<event_id> last_event_id, subscriber fn) {
  std::lock_guard lk(mtx_);
  forget_expired();
  auto& slot = tenants_[tenant_id];
  if (!slot) {
    slot = std::make_unique<tenant_events>();
    slot->floor = next_id(); // nothing issued up to now is kept for this tenant
  }
  auto& t = *slot;
  subscription sub;
  sub.id = next_subscription_++;
  if (last_event_id) {
    // Older than what is kept, newer than anything issued here (another node's, or the clock
    // went back across a restart), or more than a stream may queue: the gap is said plainly.
    size_t replay = 0;
    for (const auto& [id, ev] : t.kept)
      if (*last_event_id < id)
        replay += ev.wire.size();
    std::string why;
    if (*last_event_id < t.floor)
      why = "are no longer kept";
    else if (last_ < *last_event_id)
      why = "were not issued by this server";
    else if (replay > opts_.replay_bytes)
      why = "are more than one replay sends";
    if (!why.empty()) {
      sub.resumed = false;
      auto latest = t.kept.empty() ? t.floor : t.kept.back().first;
      nlohmann::json data{{"last_event_id", last_event_id->str()},
                          {"message", "events after " + last_event_id->str() + " " + why +
                                          "; read the current state through the REST API, "
                                          "then follow this stream"}};
      auto resync = make_event(latest, "stream.resync", data);
      // Carries the latest id, so a reconnect after it resumes from here, not from the gap.
      fn(resync);
    } else {
      for (const auto& [id, ev] : t.kept)
        if (*last_event_id < id)
          fn(ev);
    }
  }
  t.subscribers.emplace(sub.id, std::move(fn));
  ++subscribers_;
  return sub;
}

void event_hub::unsubscribe(const std::string& tenant_id, uint64_t subscription_id) {
  std::lock_guard lk(mtx_);
  auto it = tenants_.find(tenant_id);
  if (it == tenants_.end())
    return;
  auto& t = *it->second;
  if (t.subscribers.erase(subscription_id) > 0) {
    --subscribers_;
    if (t.subscribers.empty())
      t.idle_since = now_();
  }
  forget_expired();
}

bool event_hub::reserve_stream(const std::string& tenant_id, size_t limit) {
  std::lock_guard lk(mtx_);
  auto& taken = reserved_[tenant_id];
  if (taken >= limit) {
    if (taken == 0)
      reserved_.erase(tenant_id);
    return false;
  }
  ++taken;
  return true;
}

void event_hub::release_stream(const std::string& tenant_id) {
  std::lock_guard lk(mtx_);
  auto it = reserved_.find(tenant_id);
  if (it == reserved_.end())
    return;
  if (--it->second == 0)
    reserved_.erase(it);
}

size_t event_hub::streams_reserved(const std::string& tenant_id) const {
  std::lock_guard lk(mtx_);
  auto it = reserved_.find(tenant_id);
  return it == reserved_.end() ? 0 : it->second;
}

size_t event_hub::subscribers() const {
  std::lock_guard lk(mtx_);
  return subscribers_;
}

size_t event_hub::subscribers_of(const std::string& tenant_id) const {
  std::lock_guard lk(mtx_);
  auto it = tenants_.find(tenant_id);
  return it == tenants_.end() ? 0 : it->second->subscribers.size();
}

size_t event_hub::tenants_kept() const {
  std::lock_guard lk(mtx_);
  return tenants_.size();
}

} // namespace parley::runtime
