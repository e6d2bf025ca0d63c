#include "actors/conversation.hpp"

#include <array>
#include <stdexcept>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/inbound_store.hpp"
#include "actors/interfaces.hpp"
#include "domain/utc_time.hpp"
#include "domain/uuid.hpp"
#include "runtime/errors.hpp"

namespace parley {

namespace {

struct conversation_state {
  const conversation_deps* deps = nullptr;
  caf::actor_clock::time_point last_active;
  // This state exists once per active contact (a million per node is the design point), so ids
  // are held in 16 bytes each, not as strings (32 bytes plus a heap block each).
  domain::uuid tenant_id;
  domain::uuid channel_id;
  domain::uuid conversation_id; ///< valid once has_conversation_id (after the first commit)
  std::string wa_id;
  /// Hashes of the last wamids committed here: Meta's quick retries are answered without a
  /// database round trip (the unique index stays the real guard).
  std::array<uint64_t, 8> recent{};
  uint8_t recent_next = 0;
  bool has_conversation_id = false;
  /// Hash of the profile name last committed with this contact's rows (0: none yet). While a
  /// message brings the same name, its contact and conversation rows are known to exist as they
  /// should, and the writer skips upserting them. 32 bits fit the padding after the flags: the
  /// state must not grow (a million actors, under 2 KiB each with jemalloc's size classes).
  uint32_t profile_hash = 0;
  static inline const char* name = "conversation";

  bool seen(uint64_t h) const {
    for (auto x : recent)
      if (x == h)
        return true;
    return false;
  }
  std::string conversation() const {
    return has_conversation_id ? conversation_id.str() : std::string{};
  }
  void remember(uint64_t h) {
    recent[recent_next] = h;
    recent_next = static_cast<uint8_t>((recent_next + 1) % recent.size());
  }
};

using conversation_ptr = caf::stateful_actor<conversation_state>*;

uint64_t wamid_hash(const std::string& wamid) {
  // Never 0, so an empty slot never matches.
  return std::hash<std::string>{}(wamid) | 1u;
}

uint32_t profile_hash(const std::string& profile_name) {
  return static_cast<uint32_t>(std::hash<std::string>{}(profile_name)) | 1u;
}

/// "known": the contact and conversation rows exist with this profile name (`profile`, its
/// profile_hash).
nlohmann::json message_row(const conversation_state& st, domain::inbound_message& msg,
                           uint32_t profile) {
  bool known = st.has_conversation_id && st.profile_hash == profile;
  return inbound_store::message_row(st.tenant_id.str(), st.channel_id.str(), st.wa_id, msg, known);
}

nlohmann::json timestamp_of(const nlohmann::json& unix_seconds) {
  if (!unix_seconds.is_number_integer())
    return nullptr;
  auto text = domain::utc_timestamp(unix_seconds.get<int64_t>());
  return text ? nlohmann::json(*text) : nlohmann::json(nullptr);
}

/// The message.created event of `row` (a message_row) without the ids the commit assigns.
/// Built whatever wants() says now: a stream opened during the commit must get it (the hub drops
/// it after the commit when nobody listens); a few small copies per message.
nlohmann::json event_preview(const conversation_state& st, const nlohmann::json& row) {
  if (!st.deps->events)
    return nullptr;
  return {{"channel_id", row["channel_id"]},
          {"direction", "inbound"},
          {"type", row["type"]},
          {"wa_message_id", row["wamid"]},
          {"from", st.wa_id},
          {"content", row["content"]},
          {"context", row["context"]},
          {"status", "received"},
          {"timestamp", timestamp_of(row["ts"])}};
}

/// Commits `row` and answers `rp` with the result. await: this contact's messages are committed
/// in arrival order; other conversations keep flowing and share the writer's batches.
void store(conversation_ptr self, caf::typed_response_promise<nlohmann::json> rp,
           uint64_t wamid_hash, uint32_t profile, const char* kind, nlohmann::json row) {
  auto preview = event_preview(self->state, row);
  // No timeout: the writer answers every op (persistence/writer.hpp).
  self->request(self->state.deps->writer->get(), caf::infinite, persistence::persist_atom::value,
                persistence::write_op{kind, std::move(row)})
      .await(
          [self, rp, wamid_hash, profile,
           preview = std::move(preview)](nlohmann::json& result) mutable {
            self->state.remember(wamid_hash);
            if (!preview.is_null() && !result.value("duplicate", true)) {
              preview["id"] = result["message_id"];
              preview["conversation_id"] = result["conversation_id"];
              self->state.deps->events->publish(self->state.tenant_id.str(), "message.created",
                                                preview);
            }
            if (auto it = result.find("conversation_id"); it != result.end() && it->is_string())
              if (auto id = domain::uuid::parse(it->get_ref<const std::string&>())) {
                self->state.conversation_id = *id;
                self->state.has_conversation_id = true;
                self->state.profile_hash = profile;
              }
            rp.deliver(std::move(result));
          },
          [self, rp](caf::error& err) mutable {
            // Whatever failed, the next attempt upserts the contact's rows again instead of
            // trusting what this actor remembers (say, rows deleted behind its back).
            self->state.profile_hash = 0;
            rp.deliver(std::move(err));
          });
}

caf::typed_response_promise<nlohmann::json> store_status(conversation_ptr self,
                                                         domain::status_event& ev,
                                                         int64_t raw_event_id,
                                                         bool completes_event) {
  auto& st = self->state;
  st.last_active = self->clock().now();
  nlohmann::json row{
      {"tenant_id", st.tenant_id.str()},
      {"channel_id", st.channel_id.str()},
      {"wamid", ev.wamid},
      {"status", ev.status_text},
      {"recipient_id", ev.recipient_id},
      {"ts", ev.timestamp},
      {"error_code", ev.error_code ? nlohmann::json(*ev.error_code) : nlohmann::json(nullptr)},
      {"error_title", ev.error_title},
      {"errors", std::move(ev.errors)},
      {"conversation", std::move(ev.conversation)},
      {"pricing", std::move(ev.pricing)}};
  row["raw_event_id"] = raw_event_id;
  if (completes_event)
    row["completes_event"] = true;
  auto rp = self->make_response_promise<nlohmann::json>();
  // Meta's report as received (the message's own status only moves forward: GET it for that).
  nlohmann::json live;
  std::string tenant;
  if (st.deps->events) { // built before the commit, published after it (see event_preview)
    tenant = row["tenant_id"].get<std::string>();
    live = {{"channel_id", row["channel_id"]},
            {"wa_message_id", row["wamid"]},
            {"status", row["status"]},
            {"recipient", row["recipient_id"]},
            {"timestamp", timestamp_of(row["ts"])}};
    if (!row["error_code"].is_null() || !row["error_title"].get_ref<const std::string&>().empty())
      live["error"] = {{"code", row["error_code"]}, {"title", row["error_title"]}};
  }
  self->request(st.deps->writer->get(), caf::infinite, persistence::persist_atom::value,
                persistence::write_op{inbound_store::status_kind, std::move(row)})
      .await(
          [self, rp, tenant = std::move(tenant),
           live = std::move(live)](nlohmann::json& result) mutable {
            if (!live.is_null())
              self->state.deps->events->publish(tenant, "message.status", live);
            rp.deliver(std::move(result));
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
  return rp;
}

caf::behavior conversation_impl(conversation_ptr self, const conversation_deps* deps,
                                domain::uuid tenant_id, domain::uuid channel_id,
                                std::string wa_id) {
  auto& st = self->state;
  st.deps = deps;
  st.tenant_id = tenant_id;
  st.channel_id = channel_id;
  st.wa_id = std::move(wa_id);
  st.last_active = self->clock().now();
  if (deps->active)
    deps->active->inc();
  self->attach_functor([deps] {
    if (deps->active)
      deps->active->dec();
  });
  // No timer of its own: the tenant sends `tick` to conversations it has routed nothing to for
  // idle_timeout (tenant.cpp, sweep_conversations).
  return {
      // One handler per atom (each costs memory in every one of a million behaviours).
      // `completes_event`: the message is its raw event's only part, so the statement storing it
      // also marks the event processed.
      [self](inbound_atom, domain::inbound_message& msg, int64_t raw_event_id,
             bool completes_event) -> caf::result<nlohmann::json> {
        auto& st = self->state;
        st.last_active = self->clock().now();
        auto rp = self->make_response_promise<nlohmann::json>();
        // (Values go through the promise: a caf::result<nlohmann::json> built from a JSON value
        // would wrap it in an array.)
        auto hash = wamid_hash(msg.wamid);
        if (st.seen(hash)) {
          // Not written, so not marked: ingest marks the event itself.
          rp.deliver(nlohmann::json{{"conversation_id", st.conversation()}, {"duplicate", true}});
          return rp;
        }
        auto profile = profile_hash(msg.profile_name);
        auto row = message_row(st, msg, profile);
        row["raw_event_id"] = raw_event_id;
        if (completes_event)
          row["completes_event"] = true;
        store(self, rp, hash, profile, inbound_store::message_kind, std::move(row));
        return rp;
      },
      [self](status_event_atom, domain::status_event& ev, int64_t raw_event_id,
             bool completes_event) -> caf::result<nlohmann::json> {
        return store_status(self, ev, raw_event_id, completes_event);
      },
      [self](tick_atom) {
        auto& st = self->state;
        auto idle = self->clock().now() - st.last_active;
        // A message that arrived after the tenant looked keeps it.
        if (idle >= st.deps->idle_timeout) {
          if (st.deps->passivated)
            st.deps->passivated->inc();
          self->quit();
        }
      },
      [self](status_atom) {
        auto idle = self->clock().now() - self->state.last_active;
        return nlohmann::json{
            {"state", "running"},
            {"mailbox", self->mailbox().size()},
            {"idle_ms", std::chrono::duration_cast<std::chrono::milliseconds>(idle).count()}};
      },
  };
}

} // namespace

caf::actor spawn_conversation(caf::actor_system& sys, const conversation_deps& deps,
                              const std::string& tenant_id, const std::string& channel_id,
                              std::string wa_id) {
  auto tenant = domain::uuid::parse(tenant_id);
  auto channel = domain::uuid::parse(channel_id);
  if (!tenant || !channel)
    throw std::invalid_argument("conversation ids must be UUIDs: tenant '" + tenant_id +
                                "', channel '" + channel_id + "'");
  return sys.spawn(conversation_impl, &deps, *tenant, *channel, std::move(wa_id));
}

} // namespace parley
