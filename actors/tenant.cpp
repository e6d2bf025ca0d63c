#include "actors/tenant.hpp"

#include <algorithm>
#include <unordered_map>

#include <caf/event_based_actor.hpp>
#include <caf/skip.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/channel.hpp"
#include "actors/conversation.hpp"
#include "actors/conversation_index.hpp"
#include "actors/interfaces.hpp"
#include "actors/outbound_store.hpp"
#include "actors/tenant_store.hpp"
#include "runtime/errors.hpp"
#include "runtime/logging.hpp"

namespace parley {

namespace {

/// Internal: the periodic look for idle conversations (sweep_conversations).
using passivate_atom = caf::atom_constant<caf::atom("passivate")>;

struct tenant_state {
  tenant_deps deps;
  std::string tenant_id;
  /// The tenant as the API shows it; authoritative copy is the tenants row.
  nlohmann::json tenant;
  /// "loading", "running", "gone"
  std::string phase = "loading";
  caf::actor_clock::time_point last_active;
  /// Active conversation actors by (channel, contact), and back, for their exit messages.
  conversation_index conversations;
  /// A passivation sweep is scheduled (only while conversations are active).
  bool passivation_armed = false;
  /// Supervisor of the tenant's channel actors (restarted on crashes, re-driving their outbox).
  caf::actor channel_sup;
  /// Live channel actors by channel id (forgotten when they go down; the supervisor has the truth).
  std::unordered_map<std::string, caf::actor> channels;
  log::logger logger{"tenant"};
  static inline const char* name = "tenant";
};

using tenant_ptr = caf::stateful_actor<tenant_state>*;

nlohmann::json status_of(tenant_ptr self) {
  auto idle = self->clock().now() - self->state.last_active;
  return {{"state", self->state.phase},
          {"mailbox", self->mailbox().size()},
          {"conversations_active", self->state.conversations.size()},
          {"idle_ms", std::chrono::duration_cast<std::chrono::milliseconds>(idle).count()}};
}

caf::behavior running(tenant_ptr self);

/// After a failed load: answer what is waiting with the reason, then end normally (a transient
/// child that ends normally is not restarted; the next request activates the tenant afresh).
caf::behavior gone(tenant_ptr self, caf::error reason) {
  self->state.phase = "gone";
  self->send(self, stop_atom::value);
  self->set_default_handler(
      [reason](caf::scheduled_actor*, caf::message_view&) -> caf::result<caf::message> {
        return reason;
      });
  return {
      [self](stop_atom) { self->quit(); },
      [self](status_atom) { return status_of(self); },
  };
}

void load(tenant_ptr self) {
  self->state.phase = "loading";
  self->set_default_handler(caf::skip);
  self->become([self](status_atom) { return status_of(self); });
  auto db = self->state.deps.db->get();
  self->request(db, self->state.deps.db_timeout, persistence::exec_atom::value,
                tenant_store::load(self->state.tenant_id))
      .then(
          [self](nlohmann::json& tenant) {
            self->state.tenant = std::move(tenant);
            self->set_default_handler(caf::print_and_drop);
            self->become(running(self));
          },
          [self](caf::error& err) { self->become(gone(self, err)); });
}

/// The conversation actor of (channel, contact), activated on first use. Linked: it ends with
/// the tenant, and the tenant hears when it passivates or crashes.
/// How often the tenant looks for idle conversations: a conversation is passivated between
/// idle_timeout and idle_timeout plus this after its last message.
caf::timespan passivation_sweep_every(const tenant_deps& deps) {
  caf::timespan quarter = deps.conversations->idle_timeout / 4;
  return std::clamp<caf::timespan>(quarter, std::chrono::milliseconds(250),
                                   std::chrono::seconds(30));
}

/// Asks the conversations that had no message for idle_timeout to passivate (each checks its
/// own last activity, so one that just got a message stays).
void sweep_conversations(tenant_ptr self) {
  auto& st = self->state;
  auto idle =
      st.conversations.idle_since(self->clock().now() - st.deps.conversations->idle_timeout);
  for (auto& conv : idle)
    self->send(conv, tick_atom::value);
  st.passivation_armed = st.conversations.size() > 0;
  if (st.passivation_armed)
    self->delayed_send(self, passivation_sweep_every(st.deps), passivate_atom::value);
}

caf::actor conversation_for(tenant_ptr self, const std::string& channel_id,
                            const std::string& wa_id) {
  auto& st = self->state;
  auto channel = domain::uuid::parse(channel_id);
  if (!channel) // routes come from the database: a channel id is always a UUID
    throw std::invalid_argument("channel id is not a UUID: '" + channel_id + "'");
  conversation_index::key key{*channel, wa_id};
  auto now = self->clock().now();
  if (auto conv = st.conversations.touch(key, now))
    return conv;
  auto conv =
      spawn_conversation(self->system(), *st.deps.conversations, st.tenant_id, channel_id, wa_id);
  self->link_to(conv);
  st.conversations.insert(std::move(key), conv, now);
  if (!st.passivation_armed) {
    st.passivation_armed = true;
    self->delayed_send(self, passivation_sweep_every(st.deps), passivate_atom::value);
  }
  return conv;
}

/// Calls `then` with the live actor of `channel_id`, starting it under the channels supervisor
/// when needed (a channel that is not the tenant's ends at once and answers not_found).
template <class Then, class Fail>
void with_channel(tenant_ptr self, const std::string& channel_id, Then then, Fail fail) {
  auto& st = self->state;
  if (auto it = st.channels.find(channel_id); it != st.channels.end()) {
    then(it->second);
    return;
  }
  runtime::child_spec spec;
  spec.id = channel_id;
  spec.kind = "channel";
  spec.restart = runtime::restart_policy::transient;
  spec.start = [deps = st.deps.channels, tenant_id = st.tenant_id,
                channel_id](caf::actor_system& sys, const std::string& parent) {
    return spawn_channel(sys, deps, tenant_id, channel_id, parent);
  };
  self->request(st.channel_sup, st.deps.db_timeout, start_child_atom::value, std::move(spec))
      .then(
          [self, channel_id, then](caf::actor& ch) mutable {
            auto [it, fresh] = self->state.channels.emplace(channel_id, ch);
            if (fresh)
              self->monitor(ch);
            then(it->second);
          },
          [fail](caf::error& err) mutable { fail(err); });
}

/// Every channel of the tenant gets its actor: outboxes are re-driven and sessions checked
/// without waiting for the next send.
void activate_channels(tenant_ptr self) {
  auto& st = self->state;
  if (!st.deps.channels)
    return;
  self->request(st.deps.db->get(), st.deps.db_timeout, persistence::exec_atom::value,
                outbound_store::channel_ids(st.tenant_id))
      .then(
          [self](nlohmann::json& ids) {
            for (const auto& id : ids)
              with_channel(
                  self, id.get<std::string>(), [](const caf::actor&) {},
                  [self](const caf::error& err) {
                    self->state.logger.warn("cannot activate channel",
                                            {{"tenant_id", self->state.tenant_id},
                                             {"error", self->system().render(err)}});
                  });
          },
          [self](caf::error& err) {
            self->state.logger.warn(
                "cannot list channels",
                {{"tenant_id", self->state.tenant_id}, {"error", self->system().render(err)}});
          });
}

caf::behavior running(tenant_ptr self) {
  self->state.phase = "running";
  activate_channels(self);
  return {
      [self](send_atom, std::string& channel_id,
             domain::outbound_request& req) -> caf::result<nlohmann::json> {
        self->state.last_active = self->clock().now();
        auto rp = self->make_response_promise<nlohmann::json>();
        with_channel(
            self, channel_id,
            [rp, req = std::move(req)](const caf::actor& ch) mutable {
              rp.delegate(ch, send_atom::value, std::move(req));
            },
            [rp](const caf::error& err) mutable { rp.deliver(err); });
        return rp;
      },
      [self](channel_atom, std::string& channel_id) -> caf::result<caf::actor> {
        auto rp = self->make_response_promise<caf::actor>();
        with_channel(
            self, channel_id, [rp](const caf::actor& ch) mutable { rp.deliver(ch); },
            [rp](const caf::error& err) mutable { rp.deliver(err); });
        return rp;
      },
      [self](reload_atom, std::string& channel_id) -> caf::result<bool> {
        auto rp = self->make_response_promise<bool>();
        with_channel(
            self, channel_id,
            [rp](const caf::actor& ch) mutable { rp.delegate(ch, reload_atom::value); },
            [rp](const caf::error& err) mutable { rp.deliver(err); });
        return rp;
      },
      [self](passivate_atom) { sweep_conversations(self); },
      [self](inbound_atom, const std::string& channel_id, domain::inbound_message& msg,
             int64_t raw_event_id, bool completes_event) {
        self->state.last_active = self->clock().now();
        auto conv = conversation_for(self, channel_id, msg.wa_id);
        return self->delegate(conv, inbound_atom::value, std::move(msg), raw_event_id,
                              completes_event);
      },
      [self](status_event_atom, const std::string& channel_id, domain::status_event& ev,
             int64_t raw_event_id, bool completes_event) {
        self->state.last_active = self->clock().now();
        auto conv = conversation_for(self, channel_id, ev.recipient_id);
        return self->delegate(conv, status_event_atom::value, std::move(ev), raw_event_id,
                              completes_event);
      },
      [self](get_atom) -> caf::result<nlohmann::json> {
        // Usage counts change behind the actor (keys, channels): read them fresh.
        self->state.last_active = self->clock().now();
        auto rp = self->make_response_promise<nlohmann::json>();
        self->request(self->state.deps.db->get(), self->state.deps.db_timeout,
                      persistence::exec_atom::value, tenant_store::load(self->state.tenant_id))
            .then(
                [self, rp](nlohmann::json& tenant) mutable {
                  self->state.tenant = tenant;
                  rp.deliver(std::move(tenant));
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [self](update_atom, nlohmann::json& patch) -> caf::result<nlohmann::json> {
        self->state.last_active = self->clock().now();
        auto rp = self->make_response_promise<nlohmann::json>();
        self->request(self->state.deps.db->get(), self->state.deps.db_timeout,
                      persistence::exec_atom::value,
                      tenant_store::update(self->state.tenant_id, std::move(patch)))
            .then(
                [self, rp](nlohmann::json& updated) mutable {
                  self->state.tenant = updated;
                  rp.deliver(std::move(updated));
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [self](reload_atom) -> caf::result<bool> {
        auto rp = self->make_response_promise<bool>();
        self->request(self->state.deps.db->get(), self->state.deps.db_timeout,
                      persistence::exec_atom::value, tenant_store::load(self->state.tenant_id))
            .then(
                [self, rp](nlohmann::json& tenant) mutable {
                  self->state.tenant = std::move(tenant);
                  activate_channels(self);
                  rp.deliver(true);
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [self](status_atom) { return status_of(self); },
  };
}

void tenant_impl(tenant_ptr self, tenant_deps deps, std::string tenant_id,
                 std::string parent_path) {
  self->state.deps = deps;
  self->state.tenant_id = tenant_id;
  self->state.last_active = self->clock().now();
  runtime::actor_info me{"tenant", tenant_id, parent_path};
  if (deps.tree)
    deps.tree->enroll(self, me);
  runtime::supervisor_options sup;
  sup.id = "channels";
  sup.parent_path = me.path();
  sup.max_restarts = deps.max_restarts;
  sup.window = deps.restart_window;
  sup.tree = deps.tree;
  self->state.channel_sup = runtime::spawn_supervisor(self->system(), sup, {});
  self->link_to(self->state.channel_sup);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& chans = self->state.channels;
    for (auto it = chans.begin(); it != chans.end(); ++it)
      if (it->second.address() == msg.source) {
        chans.erase(it);
        return;
      }
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& st = self->state;
    if (auto key = st.conversations.erase(msg.source)) {
      // Passivated (normal) or crashed: either way the next message activates it afresh from
      // PostgreSQL; the sender of a lost request retries (ingest) or gets the error.
      if (msg.reason)
        st.logger.warn("conversation actor crashed",
                       {{"tenant_id", st.tenant_id},
                        {"channel_id", key->channel.str()},
                        {"wa_id", key->wa_id},
                        {"reason", self->system().render(msg.reason)}});
      return;
    }
    if (msg.reason)
      self->quit(msg.reason);
  });
  load(self);
}

struct registry_state {
  caf::actor tenants; ///< the supervisor of every tenant actor on this node
  log::logger logger{"tenant_registry"};
  static inline const char* name = "tenant_registry";
};

using registry_ptr = caf::stateful_actor<registry_state>*;

caf::behavior registry_impl(registry_ptr self, tenant_deps deps, std::string parent_path) {
  runtime::actor_info me{"tenant_registry", "node", parent_path};
  if (deps.tree)
    deps.tree->enroll(self, me);
  runtime::supervisor_options opts;
  opts.id = "tenants";
  opts.parent_path = me.path();
  opts.strat = runtime::strategy::one_for_one;
  // Tenants fail independently; more restarts than runtime.supervisor_max_restarts within the
  // window means something systemic, which the registry's own supervisor should see.
  opts.max_restarts = deps.max_restarts;
  opts.window = deps.restart_window;
  opts.tree = deps.tree;
  self->state.tenants = runtime::spawn_supervisor(self->system(), opts, {});
  self->link_to(self->state.tenants);
  // Rows of deleted tenants that landed after the delete are swept at start-up (a crash may have
  // come between) and then every sweep_interval (tenant_store::sweep_deleted).
  if (deps.db)
    self->send(self, tick_atom::value);
  return {
      [self, deps](tick_atom) {
        self->request(deps.db->get(), deps.db_timeout, persistence::exec_atom::value,
                      tenant_store::sweep_deleted(deps.sweep_horizon))
            .then(
                [self](nlohmann::json& swept) {
                  if (swept.value("rows", int64_t{0}) > 0)
                    self->state.logger.warn(
                        "rows of deleted tenants swept",
                        {{"tenants", swept["tenants"]}, {"rows", swept["rows"]}});
                },
                [self](caf::error& err) {
                  self->state.logger.warn("deleted tenants not swept; next sweep later",
                                          {{"error", self->system().render(err)}});
                });
        self->delayed_send(self, deps.sweep_interval, tick_atom::value);
      },
      [self, deps](tenant_atom, std::string& tenant_id) {
        runtime::child_spec spec;
        spec.id = tenant_id;
        spec.kind = "tenant";
        spec.restart = runtime::restart_policy::transient;
        spec.start = [deps, tenant_id](caf::actor_system& sys, const std::string& parent) {
          return spawn_tenant(sys, deps, tenant_id, parent);
        };
        return self->delegate(self->state.tenants, start_child_atom::value, std::move(spec));
      },
      [self](evict_atom, std::string& tenant_id) {
        return self->delegate(self->state.tenants, stop_child_atom::value, std::move(tenant_id));
      },
      [self](status_atom) {
        return nlohmann::json{{"state", "running"}, {"mailbox", self->mailbox().size()}};
      },
  };
}

} // namespace

caf::actor spawn_tenant(caf::actor_system& sys, tenant_deps deps, std::string tenant_id,
                        std::string parent_path) {
  return sys.spawn(tenant_impl, deps, std::move(tenant_id), std::move(parent_path));
}

runtime::child_spec tenant_registry_spec(tenant_deps deps, runtime::actor_slot* slot) {
  return runtime::published_child("node", "tenant_registry", slot,
                                  [deps](caf::actor_system& sys, const std::string& parent) {
                                    return sys.spawn(registry_impl, deps, parent);
                                  });
}

} // namespace parley
