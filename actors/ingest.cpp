#include "actors/ingest.hpp"

#include <unordered_map>
#include <unordered_set>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/channel_store.hpp"
#include "actors/inbound_store.hpp"
#include "actors/interfaces.hpp"
#include "domain/crypto.hpp"
#include "domain/webhook.hpp"
#include "runtime/deadline_book.hpp"
#include "runtime/errors.hpp"
#include "runtime/logging.hpp"

namespace parley::ingest_detail {

/// Book-keeping of one raw event while its parts are in flight.
struct event_progress {
  int64_t id = 0;
  std::string body;
  std::string channel_id; ///< set for per-channel webhooks: only that channel may be addressed
  /// The body parsed already (by accept, before it was durable); taken by the first process().
  std::shared_ptr<domain::webhook_result> parsed;
  int attempt = 1;
  size_t outstanding = 0;
  size_t failed = 0;
  size_t routed = 0;
  size_t unknown = 0;
  size_t fresh = 0;
  size_t rejected = 0; ///< parts that can never be stored (tenant or channel gone)
  std::string error;
};

using progress_ptr = std::shared_ptr<event_progress>;

} // namespace parley::ingest_detail

// Retries are sent to the actor itself and never leave the node.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::ingest_detail::progress_ptr)

namespace parley {

namespace {

using ingest_detail::event_progress;
using ingest_detail::progress_ptr;

struct route {
  std::string tenant_id;
  std::string channel_id;
  caf::actor_clock::time_point until; ///< re-checked after this (suspension, reassignment)
};

struct ingest_state {
  ingest_deps deps;
  std::unordered_map<std::string, route> routes; ///< phone_number_id -> channel
  std::unordered_map<std::string, caf::actor_clock::time_point> unknown; ///< negative cache, until
  std::unordered_map<std::string, caf::actor> tenant_actors;             ///< cached activations
  std::unordered_set<int64_t> in_flight; ///< event ids being processed
  int64_t replay_cursor = 0;
  bool pruning = false; ///< a retention pass is under way (a long one may outlast a sweep tick)
  runtime::deadline_book deadlines; ///< of the one-message fast path's requests (the hot ones)
  log::logger logger{"ingest"};
  static inline const char* name = "ingest";
};

using ingest_ptr = caf::stateful_actor<ingest_state>*;

metrics::counter& webhook_outcome(ingest_ptr self, const std::string& outcome) {
  return self->state.deps.metrics->get_counter(
      "parley_webhooks_total", "Webhooks by outcome (accepted at the edge; the rest after parsing)",
      {{"outcome", outcome}});
}

void process(ingest_ptr self, progress_ptr ev);

// These exist from start-up (at 0), so an alert on their increase sees the first one.
metrics::counter& raw_events_left(metrics::registry* reg) {
  return reg->get_counter(
      "parley_raw_events_left_total",
      "Raw events whose processing failed every attempt (the sweep retries them)");
}

metrics::counter& raw_events_pruned(metrics::registry* reg) {
  return reg->get_counter("parley_raw_events_pruned_total",
                          "Processed raw events deleted after retention.raw_event_days");
}

metrics::counter& raw_events_replayed(metrics::registry* reg) {
  return reg->get_counter(
      "parley_raw_events_replayed_total",
      "Raw events found unprocessed (start-up replay or sweep) and processed again");
}

void finish(ingest_ptr self, const progress_ptr& ev) {
  auto& st = self->state;
  if (ev->failed > 0) {
    if (ev->attempt < st.deps.max_attempts) {
      // Transient (database, passivation race): try the whole event again; every step is
      // idempotent, so parts already committed are recognised as duplicates.
      auto retry = std::make_shared<event_progress>();
      retry->id = ev->id;
      retry->body = std::move(ev->body);
      retry->channel_id = ev->channel_id;
      retry->attempt = ev->attempt + 1;
      self->delayed_send(self, std::chrono::milliseconds(100 * (1 << ev->attempt)),
                         caf::make_message(retry));
      return;
    }
    st.logger.warn("raw event left for the sweep",
                   {{"raw_event_id", ev->id}, {"error", ev->error}});
    raw_events_left(st.deps.metrics).inc();
    st.in_flight.erase(ev->id);
    return;
  }
  std::string outcome = "accepted";
  if (ev->routed == 0 && ev->unknown > 0)
    outcome = "unknown_number";
  else if (ev->unknown > 0 || ev->rejected > 0)
    outcome = "partial";
  if (ev->rejected > 0)
    webhook_outcome(self, "rejected").inc();
  if (ev->unknown > 0)
    webhook_outcome(self, "unknown_number").inc();
  if (ev->routed > 0 && ev->fresh == 0)
    webhook_outcome(self, "duplicate").inc();
  auto id = ev->id;
  self->request(st.deps.writer->get(), st.deps.request_timeout, persistence::persist_atom::value,
                persistence::write_op{inbound_store::raw_event_done_kind,
                                      inbound_store::raw_event_done_row(id, outcome, ev->error)})
      .then([self, id](nlohmann::json&) { self->state.in_flight.erase(id); },
            [self, id](caf::error&) {
              // The parts are committed; only the mark is missing. A replay will find only
              // duplicates and mark it then.
              self->state.in_flight.erase(id);
            });
}

void part_done(ingest_ptr self, const progress_ptr& ev) {
  if (--ev->outstanding == 0)
    finish(self, ev);
}

/// Calls `then(tenant actor)` with the tenant's live activation.
void with_tenant_actor(ingest_ptr self, const std::string& tenant_id,
                       std::function<void(const caf::actor&)> then,
                       std::function<void(const caf::error&)> fail) {
  auto& st = self->state;
  if (auto it = st.tenant_actors.find(tenant_id); it != st.tenant_actors.end())
    return then(it->second);
  self->request(st.deps.tenants->get(), st.deps.request_timeout, tenant_atom::value, tenant_id)
      .then(
          [self, tenant_id, then](caf::actor& tenant) {
            self->monitor(tenant);
            self->state.tenant_actors[tenant_id] = tenant;
            then(tenant);
          },
          [fail](caf::error& err) { fail(err); });
}

/// The cached route of `pnid`, if fresh and allowed for a webhook posted to `posted_channel`.
const route* live_route(ingest_ptr self, const std::string& pnid,
                        const std::string& posted_channel) {
  auto& st = self->state;
  auto it = st.routes.find(pnid);
  if (it == st.routes.end() || it->second.until < self->clock().now())
    return nullptr;
  if (!posted_channel.empty() && it->second.channel_id != posted_channel)
    return nullptr; // a channel's own secret only vouches for that channel
  return &it->second;
}

void count_message(ingest_ptr self, const std::string& type, bool duplicate) {
  auto* reg = self->state.deps.metrics;
  if (!duplicate)
    reg->get_counter("parley_inbound_messages_total", "Inbound messages stored, by type",
                     {{"type", type}})
        .inc();
  else
    reg->get_counter("parley_inbound_duplicates_total",
                     "Inbound messages recognised as already stored (retries, replays)")
        .inc();
}

void count_status(ingest_ptr self, const std::string& value) {
  self->state.deps.metrics
      ->get_counter("parley_inbound_statuses_total", "Message statuses received, by value",
                    {{"status", value}})
      .inc();
}

void dispatch(ingest_ptr self, const progress_ptr& ev, domain::webhook_batch& batch) {
  auto& st = self->state;
  auto* reg = st.deps.metrics;
  for (const auto& other : batch.others)
    reg->get_counter("parley_webhook_changes_total",
                     "Webhook changes that are not messages or statuses, by field",
                     {{"field", other.field}})
        .inc();
  auto route_of = [&](const std::string& pnid) { return live_route(self, pnid, ev->channel_id); };
  ev->outstanding = 1; // held until every part is sent, so finish() runs once
  auto fail_part = [self, ev](const caf::error& err) {
    auto code = code_of(err);
    if (code == errc::not_found || code == errc::invalid_argument || code == errc::conflict) {
      // Permanent: the tenant or channel is gone, or the row cannot be stored. Retrying would
      // loop forever; the event is marked (partial, with the reason) and the routes refreshed.
      ++ev->rejected;
      self->state.routes.clear();
    } else {
      ++ev->failed;
    }
    ev->error = message_of(err);
    part_done(self, ev);
  };
  for (auto& msg : batch.messages) {
    const route* r = route_of(msg.phone_number_id);
    if (!r) {
      ++ev->unknown;
      continue;
    }
    ++ev->routed;
    ++ev->outstanding;
    auto type = msg.type;
    with_tenant_actor(
        self, r->tenant_id,
        [self, ev, channel_id = r->channel_id, msg = std::move(msg), type,
         fail_part](const caf::actor& tenant) mutable {
          self->request(tenant, self->state.deps.request_timeout, inbound_atom::value, channel_id,
                        std::move(msg), ev->id)
              .then(
                  [self, ev, type](nlohmann::json& result) {
                    bool duplicate = result.value("duplicate", false);
                    if (!duplicate)
                      ++ev->fresh;
                    count_message(self, type, duplicate);
                    part_done(self, ev);
                  },
                  [self, fail_part](caf::error& err) { fail_part(err); });
        },
        fail_part);
  }
  for (auto& status : batch.statuses) {
    const route* r = route_of(status.phone_number_id);
    if (!r) {
      ++ev->unknown;
      continue;
    }
    ++ev->routed;
    ++ev->outstanding;
    auto value = status.status_text;
    with_tenant_actor(
        self, r->tenant_id,
        [self, ev, channel_id = r->channel_id, status = std::move(status), value,
         fail_part](const caf::actor& tenant) mutable {
          self->request(tenant, self->state.deps.request_timeout, status_event_atom::value,
                        channel_id, std::move(status))
              .then(
                  [self, ev, value](nlohmann::json&) {
                    ++ev->fresh;
                    count_status(self, value);
                    part_done(self, ev);
                  },
                  [fail_part](caf::error& err) { fail_part(err); });
        },
        fail_part);
  }
  part_done(self, ev);
}

/// Resolves unknown phone_number_ids (one look-up each), then dispatches.
void resolve_then_dispatch(ingest_ptr self, const progress_ptr& ev,
                           std::shared_ptr<domain::webhook_batch> batch) {
  auto& st = self->state;
  auto now = self->clock().now();
  std::vector<std::string> missing;
  for (const auto& pnid : batch->phone_number_ids) {
    if (auto it = st.routes.find(pnid); it != st.routes.end() && it->second.until > now)
      continue;
    auto neg = st.unknown.find(pnid);
    if (neg != st.unknown.end() && neg->second > now)
      continue;
    missing.push_back(pnid);
  }
  if (missing.empty())
    return dispatch(self, ev, *batch);
  auto pending = std::make_shared<size_t>(missing.size());
  for (const auto& pnid : missing) {
    self->request(st.deps.db->get(), st.deps.request_timeout, persistence::exec_atom::value,
                  channel_store::route(pnid))
        .then(
            [self, ev, batch, pending, pnid](nlohmann::json& r) {
              self->state.routes[pnid] = route{r["tenant_id"], r["channel_id"],
                                               self->clock().now() + std::chrono::seconds(60)};
              self->state.unknown.erase(pnid);
              if (--*pending == 0)
                dispatch(self, ev, *batch);
            },
            [self, ev, batch, pending, pnid](caf::error& err) {
              if (code_of(err) == errc::not_found) {
                self->state.routes.erase(pnid);
                // Numbers nobody owns are looked up again after a minute (a channel may be added).
                self->state.unknown[pnid] = self->clock().now() + std::chrono::seconds(60);
              } else {
                ++ev->failed;
                ev->error = message_of(err);
              }
              if (--*pending == 0) {
                if (ev->failed > 0) {
                  ev->outstanding = 1;
                  return part_done(self, ev);
                }
                dispatch(self, ev, *batch);
              }
            });
  }
}

void process(ingest_ptr self, progress_ptr ev) {
  auto parsed = ev->parsed ? std::move(*ev->parsed) : domain::parse_webhook(ev->body);
  ev->parsed.reset();
  if (auto* err = std::get_if<domain::webhook_error>(&parsed)) {
    webhook_outcome(self, "unparsable").inc();
    auto id = ev->id;
    self->request(
            self->state.deps.writer->get(), self->state.deps.request_timeout,
            persistence::persist_atom::value,
            persistence::write_op{inbound_store::raw_event_done_kind,
                                  inbound_store::raw_event_done_row(id, "unparsable", err->reason)})
        .then([self, id](nlohmann::json&) { self->state.in_flight.erase(id); },
              [self, id](caf::error&) { self->state.in_flight.erase(id); });
    return;
  }
  auto batch =
      std::make_shared<domain::webhook_batch>(std::get<domain::webhook_batch>(std::move(parsed)));
  resolve_then_dispatch(self, ev, std::move(batch));
}

/// Parses, routes and stores the parts of a committed raw event (once per event id).
void begin_processing(ingest_ptr self, int64_t id, std::string body, std::string channel_id,
                      std::shared_ptr<domain::webhook_result> parsed) {
  if (!self->state.in_flight.insert(id).second)
    return;
  auto ev = std::make_shared<event_progress>();
  ev->id = id;
  ev->body = std::move(body);
  ev->channel_id = std::move(channel_id);
  ev->parsed = std::move(parsed);
  process(self, ev);
}

/// Feeds unprocessed raw events in pages, oldest first.
void replay_page(ingest_ptr self, int min_age_s) {
  auto& st = self->state;
  self->request(st.deps.db->get(), st.deps.request_timeout, persistence::exec_atom::value,
                inbound_store::unprocessed_events(st.replay_cursor, 500, min_age_s))
      .then(
          [self, min_age_s](nlohmann::json& rows) {
            size_t fed = 0;
            for (auto& row : rows) {
              auto id = row["id"].get<int64_t>();
              self->state.replay_cursor = std::max(self->state.replay_cursor, id);
              if (self->state.in_flight.count(id))
                continue;
              auto body = crypto::base64_decode(row["body_b64"].get<std::string>());
              if (!body)
                continue;
              ++fed;
              begin_processing(self, id, std::move(*body),
                               row["channel_id"].is_string() ? row["channel_id"].get<std::string>()
                                                             : "",
                               nullptr);
            }
            if (fed > 0) {
              self->state.logger.info("replayed raw events", {{"count", fed}});
              raw_events_replayed(self->state.deps.metrics).inc(static_cast<double>(fed));
            }
            if (rows.size() == 500)
              replay_page(self, min_age_s);
            else
              self->state.replay_cursor = 0; // next sweep starts from the oldest again
          },
          [self](caf::error& err) {
            self->state.logger.warn("replay failed; will retry at the next sweep",
                                    {{"error", message_of(err)}});
            self->state.replay_cursor = 0;
          });
}

/// Deletes processed raw events past retention, a bounded page at a time from the oldest until a
/// page reaches events still within retention (docs/operations.md "Retention").
void prune_raw_events(ingest_ptr self, int64_t after = 0, int64_t pruned_before = 0) {
  auto& st = self->state;
  constexpr int page = 5000;
  if (st.deps.raw_event_retention_days <= 0 || (after == 0 && st.pruning))
    return;
  st.pruning = true;
  self->request(st.deps.db->get(), st.deps.request_timeout, persistence::exec_atom::value,
                inbound_store::prune_raw_events(st.deps.raw_event_retention_days, page, after))
      .then(
          [self, pruned_before](nlohmann::json& r) {
            auto deleted = r["deleted"].get<int64_t>();
            raw_events_pruned(self->state.deps.metrics).inc(static_cast<double>(deleted));
            if (r["more"].get<bool>())
              return prune_raw_events(self, r["last_id"].get<int64_t>(), pruned_before + deleted);
            self->state.pruning = false;
            if (pruned_before + deleted > 0)
              self->state.logger.info(
                  "raw events pruned",
                  {{"count", pruned_before + deleted},
                   {"retention_days", self->state.deps.raw_event_retention_days}});
          },
          [self](caf::error& err) {
            self->state.pruning = false;
            self->state.logger.warn("raw events not pruned; will retry at the next sweep",
                                    {{"error", message_of(err)}});
          });
}

using ack_promise = caf::typed_response_promise<nlohmann::json>;

/// The general path: the raw event is committed alone (that is the acknowledgement), then parsed
/// and its parts stored and marked by process().
void store_then_process(ingest_ptr self, ack_promise rp, std::string body, std::string channel_id,
                        const std::string& request_id,
                        std::shared_ptr<domain::webhook_result> parsed = nullptr) {
  auto row = inbound_store::raw_event_row(body, channel_id, request_id);
  self->request(self->state.deps.writer->get(), self->state.deps.request_timeout,
                persistence::persist_atom::value,
                persistence::write_op{inbound_store::raw_event_kind, std::move(row)})
      .then(
          [self, rp, body = std::move(body), channel_id = std::move(channel_id),
           parsed = std::move(parsed)](nlohmann::json& stored) mutable {
            auto id = stored["id"].get<int64_t>();
            rp.deliver(std::move(stored));
            begin_processing(self, id, std::move(body), std::move(channel_id), std::move(parsed));
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
}

/// A signed webhook, not yet durable. One message to a route and tenant already known (nearly
/// all of Meta's traffic once a channel is warm) goes to its conversation with the raw event:
/// both commit in one transaction. Anything else, and any failure of that path other than the
/// database being down, takes the general path.
void accept(ingest_ptr self, ack_promise rp, std::string body, std::string channel_id,
            std::string request_id) {
  auto& st = self->state;
  auto parsed = std::make_shared<domain::webhook_result>(domain::parse_webhook(body));
  auto* batch = std::get_if<domain::webhook_batch>(parsed.get());
  // One message or one status (Meta sends nearly all of them alone), nothing else.
  const std::string* pnid = nullptr;
  if (batch && batch->others.empty()) {
    if (batch->messages.size() == 1 && batch->statuses.empty())
      pnid = &batch->messages.front().phone_number_id;
    else if (batch->statuses.size() == 1 && batch->messages.empty())
      pnid = &batch->statuses.front().phone_number_id;
  }
  const route* r = pnid ? live_route(self, *pnid, channel_id) : nullptr;
  caf::actor tenant;
  if (r)
    if (auto it = st.tenant_actors.find(r->tenant_id); it != st.tenant_actors.end())
      tenant = it->second;
  if (!tenant) // the general path uses this parse too
    return store_then_process(self, rp, std::move(body), std::move(channel_id), request_id,
                              std::move(parsed));
  auto event = inbound_store::raw_event_row(body, channel_id, request_id);
  auto fallback = [self, rp, body = std::move(body), channel_id = std::move(channel_id),
                   request_id = std::move(request_id)](caf::error& err) mutable {
    if (code_of(err) == errc::storage_unavailable) {
      rp.deliver(std::move(err));
      return;
    }
    // Tenant passivated meanwhile, a row the batch refused...: nothing was committed.
    store_then_process(self, rp, std::move(body), std::move(channel_id), request_id);
  };
  // The part goes to its conversation with the raw event; `counted` updates the metrics.
  auto store_with_event = [&](auto atom, auto part, auto counted) {
    st.deadlines.then<nlohmann::json>(
        self,
        self->request(tenant, caf::infinite, atom, r->channel_id, std::move(part),
                      std::move(event)),
        st.deps.request_timeout,
        [rp, counted](nlohmann::json& result) mutable {
          counted(result);
          rp.deliver(nlohmann::json{{"id", result["raw_event_id"]}});
        },
        std::move(fallback));
  };
  if (!batch->messages.empty()) {
    auto type = batch->messages.front().type;
    store_with_event(inbound_atom::value, std::move(batch->messages.front()),
                     [self, type](const nlohmann::json& result) {
                       bool duplicate = result.value("duplicate", false);
                       count_message(self, type, duplicate);
                       if (duplicate)
                         webhook_outcome(self, "duplicate").inc();
                     });
    return;
  }
  auto value = batch->statuses.front().status_text;
  store_with_event(status_event_atom::value, std::move(batch->statuses.front()),
                   [self, value](const nlohmann::json&) { count_status(self, value); });
}

caf::behavior ingest_impl(ingest_ptr self, ingest_deps deps, std::string parent_path) {
  self->state.deps = deps;
  raw_events_left(deps.metrics);
  raw_events_replayed(deps.metrics);
  raw_events_pruned(deps.metrics);
  if (deps.tree)
    deps.tree->enroll(self, {"ingest", "node", parent_path});
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& cache = self->state.tenant_actors;
    for (auto it = cache.begin(); it != cache.end(); ++it)
      if (it->second.address() == msg.source) {
        cache.erase(it);
        return;
      }
  });
  // Start-up: everything not processed, whatever its age; then what retention lets go.
  replay_page(self, 0);
  prune_raw_events(self);
  if (deps.sweep_interval.count() > 0)
    self->delayed_send(self, deps.sweep_interval, tick_atom::value);
  return {
      [self](ingest_atom, std::string& body, std::string& channel_id,
             std::string& request_id) -> caf::result<nlohmann::json> {
        auto rp = self->make_response_promise<nlohmann::json>();
        accept(self, rp, std::move(body), std::move(channel_id), std::move(request_id));
        return rp;
      },
      [self](progress_ptr& retry) { process(self, retry); },
      [self](runtime::deadline_tick_atom) { self->state.deadlines.on_tick(self); },
      [self](replay_atom) { replay_page(self, 0); },
      [self](reload_atom) {
        // Channels or tenants changed (created, deleted, suspended): route afresh.
        self->state.routes.clear();
        self->state.unknown.clear();
        self->state.tenant_actors.clear();
      },
      [self](tick_atom) {
        replay_page(self, self->state.deps.sweep_min_age_s);
        prune_raw_events(self);
        self->delayed_send(self, self->state.deps.sweep_interval, tick_atom::value);
      },
      [self](status_atom) {
        return nlohmann::json{{"state", "running"},
                              {"mailbox", self->mailbox().size()},
                              {"events_in_flight", self->state.in_flight.size()},
                              {"routes_cached", self->state.routes.size()}};
      },
  };
}

} // namespace

runtime::child_spec ingest_spec(ingest_deps deps, runtime::actor_slot* slot) {
  return runtime::published_child("node", "ingest", slot,
                                  [deps](caf::actor_system& sys, const std::string& parent) {
                                    return sys.spawn(ingest_impl, deps, parent);
                                  });
}

} // namespace parley
