#include "actors/conversation.hpp"

#include <array>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/inbound_store.hpp"
#include "actors/interfaces.hpp"
#include "runtime/errors.hpp"

namespace parley {

namespace {

struct conversation_state {
  const conversation_deps* deps = nullptr;
  std::string tenant_id;
  std::string channel_id;
  std::string wa_id;
  std::string conversation_id; ///< known after the first commit
  /// Hashes of the last wamids committed here: Meta's quick retries are answered without a
  /// database round trip (the unique index stays the real guard).
  std::array<uint64_t, 8> recent{};
  uint8_t recent_next = 0;
  caf::actor_clock::time_point last_active;
  static inline const char* name = "conversation";

  bool seen(uint64_t h) const {
    for (auto x : recent)
      if (x == h)
        return true;
    return false;
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

void arm_passivation(conversation_ptr self, caf::timespan after) {
  self->delayed_send(self, after, tick_atom::value);
}

nlohmann::json message_row(const conversation_state& st, domain::inbound_message& msg) {
  return {{"tenant_id", st.tenant_id},
          {"channel_id", st.channel_id},
          {"wa_id", st.wa_id},
          {"profile_name", msg.profile_name},
          {"wamid", msg.wamid},
          {"type", msg.type},
          {"content", std::move(msg.content)},
          {"raw", std::move(msg.raw)},
          {"context", std::move(msg.context)},
          {"ts", msg.timestamp}};
}

/// Commits `row` and answers `rp` with the result. await: this contact's messages are committed
/// in arrival order; other conversations keep flowing and share the writer's batches.
void store(conversation_ptr self, caf::typed_response_promise<nlohmann::json> rp,
           uint64_t wamid_hash, const char* kind, nlohmann::json row) {
  self->request(self->state.deps->writer->get(), self->state.deps->write_timeout,
                persistence::persist_atom::value, persistence::write_op{kind, std::move(row)})
      .await(
          [self, rp, wamid_hash](nlohmann::json& result) mutable {
            self->state.remember(wamid_hash);
            if (result.contains("conversation_id"))
              self->state.conversation_id = result["conversation_id"].get<std::string>();
            rp.deliver(std::move(result));
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
}

caf::typed_response_promise<nlohmann::json> store_status(conversation_ptr self,
                                                         domain::status_event& ev, const char* kind,
                                                         nlohmann::json event) {
  auto& st = self->state;
  st.last_active = self->clock().now();
  nlohmann::json row{
      {"tenant_id", st.tenant_id},
      {"channel_id", st.channel_id},
      {"wamid", ev.wamid},
      {"status", ev.status_text},
      {"recipient_id", ev.recipient_id},
      {"ts", ev.timestamp},
      {"error_code", ev.error_code ? nlohmann::json(*ev.error_code) : nlohmann::json(nullptr)},
      {"error_title", ev.error_title},
      {"errors", std::move(ev.errors)},
      {"conversation", std::move(ev.conversation)},
      {"pricing", std::move(ev.pricing)}};
  if (!event.is_null())
    row["event"] = std::move(event);
  auto rp = self->make_response_promise<nlohmann::json>();
  self->request(st.deps->writer->get(), st.deps->write_timeout, persistence::persist_atom::value,
                persistence::write_op{kind, std::move(row)})
      .await([rp](nlohmann::json& result) mutable { rp.deliver(std::move(result)); },
             [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
  return rp;
}

caf::behavior conversation_impl(conversation_ptr self, const conversation_deps* deps,
                                std::string tenant_id, std::string channel_id, std::string wa_id) {
  auto& st = self->state;
  st.deps = deps;
  st.tenant_id = std::move(tenant_id);
  st.channel_id = std::move(channel_id);
  st.wa_id = std::move(wa_id);
  st.last_active = self->clock().now();
  if (deps->active)
    deps->active->inc();
  self->attach_functor([deps] {
    if (deps->active)
      deps->active->dec();
  });
  arm_passivation(self, deps->idle_timeout);
  return {
      [self](inbound_atom, domain::inbound_message& msg,
             int64_t raw_event_id) -> caf::result<nlohmann::json> {
        auto& st = self->state;
        st.last_active = self->clock().now();
        auto rp = self->make_response_promise<nlohmann::json>();
        // (Values go through the promise: a caf::result<nlohmann::json> built from a JSON value
        // would wrap it in an array.)
        if (st.seen(wamid_hash(msg.wamid))) {
          rp.deliver(nlohmann::json{{"conversation_id", st.conversation_id}, {"duplicate", true}});
          return rp;
        }
        auto row = message_row(st, msg);
        row["raw_event_id"] = raw_event_id;
        store(self, rp, wamid_hash(msg.wamid), inbound_store::message_kind, std::move(row));
        return rp;
      },
      [self](inbound_atom, domain::inbound_message& msg,
             nlohmann::json& event) -> caf::result<nlohmann::json> {
        // The webhook is not durable yet: its raw event is written with the message, even when the
        // wamid is a known duplicate (nothing is acknowledged before it is stored).
        auto& st = self->state;
        st.last_active = self->clock().now();
        auto rp = self->make_response_promise<nlohmann::json>();
        auto row = message_row(st, msg);
        row["event"] = std::move(event);
        store(self, rp, wamid_hash(msg.wamid), inbound_store::message_event_kind, std::move(row));
        return rp;
      },
      [self](status_event_atom, domain::status_event& ev) -> caf::result<nlohmann::json> {
        return store_status(self, ev, inbound_store::status_kind, nlohmann::json{});
      },
      [self](status_event_atom, domain::status_event& ev,
             nlohmann::json& event) -> caf::result<nlohmann::json> {
        // Not durable yet: stored with its raw event in one transaction.
        return store_status(self, ev, inbound_store::status_event_kind, std::move(event));
      },
      [self](tick_atom) {
        auto& st = self->state;
        auto idle = self->clock().now() - st.last_active;
        if (idle >= st.deps->idle_timeout) {
          if (st.deps->passivated)
            st.deps->passivated->inc();
          self->quit();
          return;
        }
        arm_passivation(self, st.deps->idle_timeout - idle);
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
                              std::string tenant_id, std::string channel_id, std::string wa_id) {
  return sys.spawn(conversation_impl, &deps, std::move(tenant_id), std::move(channel_id),
                   std::move(wa_id));
}

} // namespace parley
