#include "actors/ingest.hpp"

#include <deque>
#include <unordered_map>
#include <unordered_set>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/channel_store.hpp"
#include "actors/inbound_store.hpp"
#include "actors/interfaces.hpp"
#include "domain/crypto.hpp"
#include "domain/webhook.hpp"
#include "persistence/journal.hpp"
#include "runtime/deadline_book.hpp"
#include "runtime/errors.hpp"
#include "runtime/logging.hpp"

namespace parley::ingest_detail {

/// Book-keeping of one raw event while its parts are in flight.
struct event_progress {
  int64_t id = 0;
  std::string body;
  std::string channel_id; ///< set for per-channel webhooks: only that channel may be addressed
  int attempt = 1;
  size_t outstanding = 0;
  size_t failed = 0;
  size_t routed = 0;
  size_t unknown = 0;
  size_t fresh = 0;
  size_t rejected = 0; ///< parts that can never be stored (tenant or channel gone)
  /// The event's only part was stored together with the event's "processed" mark (one
  /// statement), so no raw_event_done write is needed.
  bool marked = false;
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
using persistence::journaled_event;

/// Events replayed from the database per page.
constexpr size_t replay_page_size = 500;

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
  /// Ids of the events queued or being processed here: a replay page skips them.
  std::unordered_set<int64_t> in_flight;
  /// Committed events waiting for a processing place, oldest first, and their bodies' bytes.
  std::deque<journaled_event> queue;
  size_t queued_bytes = 0;
  size_t active = 0; ///< events being processed (at most deps.max_in_flight)
  /// Committed events were left in the database because the queue was full: once it has room
  /// again, a replay picks them up.
  bool overflowed = false;
  int64_t replay_cursor = 0; ///< the last id a replay page returned
  bool replay_asked = false; ///< a replay page request is out
  bool replay_more = false;  ///< the last page was full: ask for the next when the queue allows
  int replay_min_age_s = 0;  ///< of the replay under way
  bool pruning = false;      ///< a retention pass is under way (a long one may outlast a tick)
  runtime::deadline_book deadlines; ///< of the requests to tenants (one or more per event)
  metrics::gauge* backlog = nullptr;
  /// Per-message counters by label value, looked up once each: the registry's look-up (label
  /// set built, two locks, a scan) is not for every message.
  std::unordered_map<std::string, metrics::counter*> messages_by_type, statuses_by_value;
  metrics::counter* duplicates = nullptr;
  log::logger logger{"ingest"};
  static inline const char* name = "ingest";
};

using ingest_ptr = caf::stateful_actor<ingest_state>*;

metrics::counter& webhook_outcome(ingest_ptr self, const std::string& outcome) {
  return self->state.deps.metrics->get_counter(
      "parley_webhooks_total", "Webhooks by outcome (accepted at the edge; the rest after parsing)",
      {{"outcome", outcome}});
}

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

metrics::counter& raw_events_deferred(metrics::registry* reg) {
  return reg->get_counter("parley_raw_events_deferred_total",
                          "Committed raw events left in the database for replay because "
                          "ingest's queue was full (ingest.max_queued_mb)");
}

void process(ingest_ptr self, progress_ptr ev);
void pump(ingest_ptr self);
void replay_page(ingest_ptr self);

void update_backlog(ingest_ptr self) {
  auto& st = self->state;
  if (st.backlog)
    st.backlog->set(static_cast<double>(st.queue.size() + st.active));
}

/// The event is done here (processed, or left for the sweep after its last attempt).
void release(ingest_ptr self, int64_t id) {
  auto& st = self->state;
  st.in_flight.erase(id);
  if (st.active > 0)
    --st.active;
  pump(self);
}

/// Queues a committed event for processing, unless it is already here. Past the queue's byte
/// budget the event stays in the database only (it is committed) and a replay fetches it later.
void enqueue(ingest_ptr self, journaled_event&& ev) {
  auto& st = self->state;
  if (st.in_flight.count(ev.id))
    return;
  if (st.queued_bytes + ev.body.size() > st.deps.max_queued_bytes && !st.queue.empty()) {
    st.overflowed = true;
    raw_events_deferred(st.deps.metrics).inc();
    return;
  }
  st.in_flight.insert(ev.id);
  st.queued_bytes += ev.body.size();
  st.queue.push_back(std::move(ev));
}

/// Starts queued events while there are places, and asks for more replay pages while the queue
/// is short.
void pump(ingest_ptr self) {
  auto& st = self->state;
  while (st.active < st.deps.max_in_flight && !st.queue.empty()) {
    auto next = std::move(st.queue.front());
    st.queue.pop_front();
    st.queued_bytes -= next.body.size();
    ++st.active;
    auto ev = std::make_shared<event_progress>();
    ev->id = next.id;
    ev->body = std::move(next.body);
    ev->channel_id = std::move(next.channel_id);
    process(self, std::move(ev));
  }
  if (!st.replay_asked && st.queue.size() < replay_page_size) {
    if (st.replay_more) {
      replay_page(self);
    } else if (st.overflowed && st.queue.empty()) {
      st.overflowed = false;
      st.replay_cursor = 0;
      st.replay_min_age_s = 0;
      replay_page(self);
    }
  }
  update_backlog(self);
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
    release(self, ev->id);
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
  if (ev->marked && outcome == "accepted")
    return release(self, id);
  // Either way the event is released: the parts are committed; if only the mark is missing, a
  // replay finds duplicates only and marks it then.
  auto done = [self, id](auto&&...) { release(self, id); };
  self->request(st.deps.writer->get(), caf::infinite, persistence::persist_atom::value,
                persistence::write_op{inbound_store::raw_event_done_kind,
                                      inbound_store::raw_event_done_row(id, outcome, ev->error)})
      .then([done](nlohmann::json&) { done(); }, [done](caf::error&) { done(); });
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
  auto& st = self->state;
  if (duplicate) {
    if (!st.duplicates)
      st.duplicates = &st.deps.metrics->get_counter(
          "parley_inbound_duplicates_total",
          "Inbound messages recognised as already stored (retries, replays)");
    st.duplicates->inc();
    return;
  }
  auto& c = st.messages_by_type[type];
  if (!c)
    c = &st.deps.metrics->get_counter("parley_inbound_messages_total",
                                      "Inbound messages stored, by type", {{"type", type}});
  c->inc();
}

void count_status(ingest_ptr self, const std::string& value) {
  auto& st = self->state;
  auto& c = st.statuses_by_value[value];
  if (!c)
    c = &st.deps.metrics->get_counter("parley_inbound_statuses_total",
                                      "Message statuses received, by value", {{"status", value}});
  c->inc();
}

/// Sends one part to its tenant (which routes it to the conversation) and counts the answer.
template <class Atom, class Part, class Counted>
void send_part(ingest_ptr self, const progress_ptr& ev, const route& r, Atom atom, Part&& part,
               bool completes, Counted counted,
               const std::function<void(const caf::error&)>& fail_part) {
  ++ev->routed;
  ++ev->outstanding;
  with_tenant_actor(
      self, r.tenant_id,
      [self, ev, atom, channel_id = r.channel_id, part = std::forward<Part>(part), completes,
       counted, fail_part](const caf::actor& tenant) mutable {
        auto& st = self->state;
        st.deadlines.then<nlohmann::json>(
            self,
            self->request(tenant, caf::infinite, atom, channel_id, std::move(part), ev->id,
                          completes),
            st.deps.request_timeout,
            [self, ev, counted](nlohmann::json& result) {
              counted(result);
              if (result.value("event_marked", false))
                ev->marked = true;
              part_done(self, ev);
            },
            [fail_part](caf::error& err) { fail_part(err); });
      },
      fail_part);
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
  // An event of one part (nearly all of Meta's) is marked processed in the statement that
  // stores that part.
  bool single = batch.messages.size() + batch.statuses.size() == 1;
  ev->outstanding = 1; // held until every part is sent, so finish() runs once
  std::function<void(const caf::error&)> fail_part = [self, ev](const caf::error& err) {
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
    send_part(
        self, ev, *r, inbound_atom::value, std::move(msg), single,
        [self, ev, type = msg.type](const nlohmann::json& result) {
          bool duplicate = result.value("duplicate", false);
          if (!duplicate)
            ++ev->fresh;
          count_message(self, type, duplicate);
        },
        fail_part);
  }
  for (auto& status : batch.statuses) {
    const route* r = route_of(status.phone_number_id);
    if (!r) {
      ++ev->unknown;
      continue;
    }
    send_part(
        self, ev, *r, status_event_atom::value, std::move(status), single,
        [self, ev, value = status.status_text](const nlohmann::json&) {
          ++ev->fresh;
          count_status(self, value);
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

/// Parses a committed raw event, then routes and stores its parts (see finish()).
void process(ingest_ptr self, progress_ptr ev) {
  auto parsed = domain::parse_webhook(ev->body);
  if (auto* err = std::get_if<domain::webhook_error>(&parsed)) {
    webhook_outcome(self, "unparsable").inc();
    auto id = ev->id;
    auto done = [self, id](auto&&...) { release(self, id); };
    self->request(
            self->state.deps.writer->get(), caf::infinite, persistence::persist_atom::value,
            persistence::write_op{inbound_store::raw_event_done_kind,
                                  inbound_store::raw_event_done_row(id, "unparsable", err->reason)})
        .then([done](nlohmann::json&) { done(); }, [done](caf::error&) { done(); });
    return;
  }
  auto batch =
      std::make_shared<domain::webhook_batch>(std::get<domain::webhook_batch>(std::move(parsed)));
  resolve_then_dispatch(self, ev, std::move(batch));
}

/// Asks for the next page of unprocessed raw events (oldest first, after the cursor) and queues
/// them. Pages are asked one at a time, and the next only once the queue is short (pump()), so a
/// large backlog never sits in memory at once.
void replay_page(ingest_ptr self) {
  auto& st = self->state;
  st.replay_asked = true;
  st.replay_more = false;
  self->request(st.deps.db->get(), st.deps.request_timeout, persistence::exec_atom::value,
                inbound_store::unprocessed_events(
                    st.replay_cursor, static_cast<int>(replay_page_size), st.replay_min_age_s))
      .then(
          [self](nlohmann::json& rows) {
            auto& st = self->state;
            st.replay_asked = false;
            size_t fed = 0;
            for (auto& row : rows) {
              auto id = row["id"].get<int64_t>();
              st.replay_cursor = std::max(st.replay_cursor, id);
              if (st.in_flight.count(id))
                continue;
              auto body = crypto::base64_decode(row["body_b64"].get<std::string>());
              if (!body)
                continue;
              ++fed;
              // Replayed events always fit: the queue was short when the page was asked for.
              st.in_flight.insert(id);
              st.queued_bytes += body->size();
              st.queue.push_back(journaled_event{
                  id, std::move(*body),
                  row["channel_id"].is_string() ? row["channel_id"].get<std::string>() : ""});
            }
            if (fed > 0) {
              st.logger.info("replayed raw events", {{"count", fed}});
              raw_events_replayed(st.deps.metrics).inc(static_cast<double>(fed));
            }
            if (rows.size() == replay_page_size)
              st.replay_more = true;
            else
              st.replay_cursor = 0; // the next replay starts from the oldest again
            pump(self);
          },
          [self](caf::error& err) {
            auto& st = self->state;
            st.replay_asked = false;
            st.replay_more = false;
            st.replay_cursor = 0;
            st.logger.warn("replay failed; will retry at the next sweep",
                           {{"error", message_of(err)}});
          });
}

/// Starts a replay of the unprocessed events at least `min_age_s` old, unless one runs.
void start_replay(ingest_ptr self, int min_age_s) {
  auto& st = self->state;
  if (st.replay_asked || st.replay_more)
    return;
  st.replay_cursor = 0;
  st.replay_min_age_s = min_age_s;
  replay_page(self);
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

caf::behavior ingest_impl(ingest_ptr self, ingest_deps deps, std::string parent_path) {
  self->state.deps = deps;
  self->state.deps.max_in_flight = std::max<size_t>(1, deps.max_in_flight);
  raw_events_left(deps.metrics);
  raw_events_replayed(deps.metrics);
  raw_events_pruned(deps.metrics);
  raw_events_deferred(deps.metrics);
  self->state.backlog = &deps.metrics->get_gauge(
      "parley_ingest_backlog", "Committed raw events queued or being processed by ingest");
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
  start_replay(self, 0);
  prune_raw_events(self);
  if (deps.sweep_interval.count() > 0)
    self->delayed_send(self, deps.sweep_interval, tick_atom::value);
  return {
      [self](persistence::journaled_atom, persistence::journaled_events& events) {
        for (auto& ev : events)
          enqueue(self, std::move(ev));
        pump(self);
      },
      [self](progress_ptr& retry) { process(self, retry); },
      [self](runtime::deadline_tick_atom) { self->state.deadlines.on_tick(self); },
      [self](replay_atom) { start_replay(self, 0); },
      [self](reload_atom) {
        // Channels or tenants changed (created, deleted, suspended): route afresh.
        self->state.routes.clear();
        self->state.unknown.clear();
        self->state.tenant_actors.clear();
      },
      [self](tick_atom) {
        start_replay(self, self->state.deps.sweep_min_age_s);
        prune_raw_events(self);
        self->delayed_send(self, self->state.deps.sweep_interval, tick_atom::value);
      },
      [self](status_atom) {
        auto& st = self->state;
        return nlohmann::json{{"state", "running"},
                              {"mailbox", self->mailbox().size()},
                              {"events_in_flight", st.in_flight.size()},
                              {"events_queued", st.queue.size()},
                              {"events_processing", st.active},
                              {"routes_cached", st.routes.size()}};
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
