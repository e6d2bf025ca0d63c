#include "actors/channel.hpp"

#include <deque>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include <caf/event_based_actor.hpp>
#include <caf/skip.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/conversation_store.hpp"
#include "actors/interfaces.hpp"
#include "actors/outbound_store.hpp"
#include "domain/channel_health.hpp"
#include "domain/graph_response.hpp"
#include "domain/ids.hpp"
#include "domain/outbound_request.hpp"
#include "domain/retry_policy.hpp"
#include "domain/token_bucket.hpp"
#include "http/client.hpp"
#include "persistence/messages.hpp"
#include "runtime/errors.hpp"
#include "runtime/logging.hpp"

namespace parley {

outbound_metrics::outbound_metrics(metrics::registry& r)
    : registry(&r) {
  constexpr auto messages_help =
      "Outbound messages that reached a final outcome, by Meta error code";
  constexpr auto attempts_help =
      "Graph API calls for outbound messages and read receipts, by outcome";
  sent = &r.get_counter("parley_outbound_messages_total", messages_help,
                        {{"outcome", "sent"}, {"code", "none"}});
  attempts_sent =
      &r.get_counter("parley_outbound_attempts_total", attempts_help, {{"outcome", "sent"}});
  attempts_retry =
      &r.get_counter("parley_outbound_attempts_total", attempts_help, {{"outcome", "retry"}});
  attempts_failed =
      &r.get_counter("parley_outbound_attempts_total", attempts_help, {{"outcome", "failed"}});
  attempts_token_invalid = &r.get_counter("parley_outbound_attempts_total", attempts_help,
                                          {{"outcome", "token_invalid"}});
  retries =
      &r.get_counter("parley_outbound_retries_total", "Outbound calls scheduled again after a "
                                                      "retryable failure");
  outbox_depth = &r.get_gauge("parley_outbound_outbox_depth",
                              "Outbound messages and read receipts accepted but not final yet");
  token_waits = &r.get_counter("parley_outbound_token_waits_total",
                               "Times a channel waited for its throughput token bucket");
  pair_waits = &r.get_counter("parley_outbound_pair_waits_total",
                              "Times a message waited for the per-recipient pair rate limit");
  graph_seconds = &r.get_histogram("parley_graph_request_seconds",
                                   "Latency of Graph API calls (sends and health checks)");
  in_doubt =
      &r.get_counter("parley_outbound_in_doubt_total",
                     "Calls found started but unrecorded after a restart: sent again, so Meta "
                     "may have received them twice");
  constexpr auto states_help = "Channels (WhatsApp sessions) active on this node, by health state";
  for (auto s : {domain::channel_state::connected, domain::channel_state::degraded,
                 domain::channel_state::disconnected, domain::channel_state::token_invalid})
    states[static_cast<int>(s)] = &r.get_gauge("parley_channels", states_help,
                                               {{"state", std::string{domain::to_string(s)}}});
}

metrics::gauge& outbound_metrics::channel_depth(const std::string& channel_id) const {
  return registry->get_gauge(
      "parley_outbound_channel_outbox_depth",
      "Outbound work accepted and not final, per channel active on this node",
      {{"channel_id", channel_id}});
}

metrics::counter& outbound_metrics::failed(int code) const {
  return registry->get_counter("parley_outbound_messages_total",
                               "Outbound messages that reached a final outcome, by Meta error code",
                               {{"outcome", "failed"}, {"code", std::to_string(code)}});
}

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

using pump_atom = caf::atom_constant<caf::atom("pump")>;
using probe_atom = caf::atom_constant<caf::atom("probe")>;
using requeue_atom = caf::atom_constant<caf::atom("requeue")>;
using rerecord_atom = caf::atom_constant<caf::atom("rerecord")>;
using load_atom = caf::atom_constant<caf::atom("load")>;
using call_atom = caf::atom_constant<caf::atom("call")>;

/// One unit of work the channel owes Meta (a row of the outbox).
struct outbox_item {
  int64_t id = 0;
  std::string message_id;
  std::string kind; ///< "message" or "read"
  std::string to;
  std::string payload; ///< the Graph request body, serialised once
  int attempts = 0;    ///< calls made so far
  int failures = 0;    ///< retryable failures so far
  /// The first call was marked in the accepting transaction (dispatched_attempt = 1).
  bool premarked = false;
};

/// An outcome waiting for its commit (retried until PostgreSQL takes it: never sent again).
struct pending_record {
  outbox_item item;
  json row;
  bool final = false;
  bool token_invalid = false;
  std::chrono::milliseconds delay{0};
  domain::graph_result result;
};

constexpr int outbox_page = 1000;

struct channel_state {
  const channel_deps* deps = nullptr;
  std::string tenant_id, channel_id;
  std::string phone_number_id, display_phone_number, access_token, messages_url, health_url;
  int throughput = 80;
  /// "loading", "running", "gone"
  std::string phase = "loading";
  std::deque<outbox_item> ready;                         ///< due now, oldest first
  std::unordered_map<int64_t, outbox_item> parked;       ///< waiting for a backoff or pair timer
  std::unordered_map<int64_t, outbox_item> flying;       ///< call in progress
  std::unordered_map<int64_t, pending_record> recording; ///< outcome not committed yet
  std::unordered_set<int64_t> known;                     ///< every outbox id held in memory
  /// Rows accepted with their first call marked that will arrive through a page load instead
  /// (a backlog was being paged in): not in doubt, their call has not been made.
  std::unordered_set<int64_t> premarked;
  int64_t loaded_upto = 0; ///< highest outbox id read from PostgreSQL
  bool more_in_db = false; ///< the outbox holds rows beyond loaded_upto not in memory
  bool loading_page = false;
  bool pump_scheduled = false;
  bool probe_in_flight = false;
  bool probe_timer = false;                    ///< a breaker probe timer is armed
  caf::actor_clock::time_point next_call_at{}; ///< earliest time the next Graph call may leave
  std::optional<domain::token_bucket> bucket;
  std::optional<domain::keyed_token_buckets> pairs;
  domain::channel_health health{domain::channel_health::options{}};
  domain::channel_state published = domain::channel_state::connected;
  bool published_once = false;
  std::string state_reason;
  std::mt19937_64 rng{std::random_device{}()};
  /// What the exit functor must take back from the gauges.
  std::shared_ptr<std::pair<int, int64_t>> gauges =
      std::make_shared<std::pair<int, int64_t>>(-1, 0);
  metrics::gauge* depth = nullptr; ///< parley_outbound_channel_outbox_depth of this channel
  log::logger logger{"channel"};
  static inline const char* name = "channel";
};

using channel_ptr = caf::stateful_actor<channel_state>*;

json log_fields(channel_ptr self) {
  return {{"tenant_id", self->state.tenant_id}, {"channel_id", self->state.channel_id}};
}

const config::outbound_config& ocfg(channel_ptr self) {
  return self->state.deps->cfg->outbound;
}

domain::retry_policy retry_policy_of(channel_ptr self) {
  const auto& o = ocfg(self);
  return {o.max_attempts, std::chrono::milliseconds(o.backoff_base_ms),
          std::chrono::milliseconds(o.backoff_max_ms)};
}

void pump(channel_ptr self);
void probe(channel_ptr self);

void track_depth(channel_ptr self, int64_t delta) {
  auto& st = self->state;
  st.deps->m->outbox_depth->inc(static_cast<double>(delta));
  st.gauges->second += delta;
  if (!st.depth)
    st.depth = &st.deps->m->channel_depth(st.channel_id);
  st.depth->set(static_cast<double>(st.gauges->second));
}

bool wants_events(channel_ptr self) {
  auto* events = self->state.deps->events;
  return events && events->wants(self->state.tenant_id);
}

/// A live event of this channel's tenant (GET /v1/events); callers that build `data` only for
/// it ask wants_events() first.
void publish(channel_ptr self, std::string_view type, const json& data) {
  if (auto* events = self->state.deps->events)
    events->publish(self->state.tenant_id, type, data);
}

/// Publishes a health change: gauges, log, the channels row (GET /v1/channels shows it), the
/// tenant's live events.
void sync_state(channel_ptr self, std::string reason = {}) {
  auto& st = self->state;
  auto now_state = st.health.state();
  if (st.published_once && now_state == st.published)
    return;
  auto* m = st.deps->m;
  if (st.published_once)
    m->states[static_cast<int>(st.published)]->dec();
  m->states[static_cast<int>(now_state)]->inc();
  st.gauges->first = static_cast<int>(now_state);
  bool first = !st.published_once;
  auto before = st.published;
  st.published = now_state;
  st.published_once = true;
  if (first)
    return;
  st.state_reason = reason;
  auto fields = log_fields(self);
  fields["from"] = domain::to_string(before);
  fields["to"] = domain::to_string(now_state);
  fields["reason"] = reason;
  if (now_state == domain::channel_state::connected)
    st.logger.info("channel state changed", fields);
  else
    st.logger.warn("channel state changed", fields);
  if (wants_events(self))
    publish(self, "channel.state",
            {{"id", st.channel_id},
             {"state", domain::to_string(now_state)},
             {"previous", domain::to_string(before)},
             {"reason", reason}});
  self->request(st.deps->db->get(), st.deps->db_timeout, persistence::exec_atom::value,
                outbound_store::set_channel_state(
                    st.tenant_id, st.channel_id, std::string{domain::to_string(now_state)}, reason))
      .then([](json&) {},
            [self](caf::error& err) {
              self->state.logger.warn(
                  "cannot store channel state",
                  {{"channel_id", self->state.channel_id}, {"error", self->system().render(err)}});
            });
}

void schedule_pump(channel_ptr self, caf::timespan after) {
  auto& st = self->state;
  if (st.pump_scheduled)
    return;
  st.pump_scheduled = true;
  self->delayed_send(self, std::max(after, caf::timespan{1ms}), pump_atom::value);
}

void park(channel_ptr self, outbox_item item, caf::timespan after) {
  auto id = item.id;
  self->state.parked.emplace(id, std::move(item));
  self->delayed_send(self, after, requeue_atom::value, id);
}

void add_loaded(channel_ptr self, const json& rows) {
  auto& st = self->state;
  for (const auto& r : rows) {
    outbox_item item;
    item.id = r["id"].get<int64_t>();
    st.loaded_upto = std::max(st.loaded_upto, item.id);
    if (!st.known.insert(item.id).second)
      continue;
    item.message_id = r["message_id"].get<std::string>();
    item.kind = r["kind"].get<std::string>();
    item.to = r["to"].get<std::string>();
    item.payload = r["payload"].dump();
    item.attempts = r["attempts"].get<int>();
    item.failures = r["failures"].get<int>();
    auto dispatched = r["dispatched_attempt"].get<int>();
    if (dispatched == 1 && item.attempts == 0 && st.premarked.erase(item.id) > 0) {
      item.premarked = true; // marked when accepted, by this process: not called yet
    } else if (dispatched > item.attempts) {
      // The call started before a crash and its outcome never reached PostgreSQL: Meta may have
      // the message already. At-least-once: send again, and count it.
      st.deps->m->in_doubt->inc();
      auto fields = log_fields(self);
      fields["outbox_id"] = item.id;
      fields["message_id"] = item.message_id;
      st.logger.warn("outbound call in doubt after restart, sending again", fields);
      item.attempts = dispatched;
    }
    track_depth(self, 1);
    auto due = std::chrono::milliseconds(r["due_in_ms"].get<int64_t>());
    if (due > 0ms)
      park(self, std::move(item), due);
    else
      st.ready.push_back(std::move(item));
  }
  st.more_in_db = rows.size() >= static_cast<size_t>(outbox_page);
}

void load_page(channel_ptr self) {
  auto& st = self->state;
  if (st.loading_page)
    return;
  st.loading_page = true;
  self->request(
          st.deps->db->get(), st.deps->db_timeout, persistence::exec_atom::value,
          outbound_store::load_outbox(st.tenant_id, st.channel_id, st.loaded_upto, outbox_page))
      .then(
          [self](json& rows) {
            self->state.loading_page = false;
            add_loaded(self, rows);
            pump(self);
          },
          [self](caf::error& err) {
            self->state.loading_page = false;
            self->state.logger.warn(
                "cannot load outbox, retrying",
                {{"channel_id", self->state.channel_id}, {"error", self->system().render(err)}});
            self->delayed_send(self, 1s, load_atom::value);
          });
}

/// Applies a channel row (start and reload): credentials, URLs, throughput.
bool apply_channel_row(channel_ptr self, const json& row) {
  auto& st = self->state;
  auto token = st.deps->secrets->open(row["access_token_enc"].get<std::string>());
  if (!token) {
    st.logger.error("cannot decrypt the channel's access token (wrong master key?)",
                    log_fields(self));
    return false;
  }
  bool token_changed = !st.access_token.empty() && *token != st.access_token;
  st.access_token = std::move(*token);
  st.phone_number_id = row["phone_number_id"].get<std::string>();
  st.display_phone_number = row["display_phone_number"].get<std::string>();
  const auto& cfg = *st.deps->cfg;
  std::string base = row["graph_base_url"].is_string() ? row["graph_base_url"].get<std::string>()
                                                       : cfg.whatsapp.graph_base_url;
  while (!base.empty() && base.back() == '/')
    base.pop_back();
  st.health_url = base + "/" + cfg.whatsapp.graph_version + "/" + st.phone_number_id;
  st.messages_url = st.health_url + "/messages";
  st.throughput = row["throughput_mps"].get<int>();
  auto now = self->clock().now();
  // A burst of 1/100 s of the rate (at least 2 tokens, so a late timer loses no fraction of a
  // token) keeps every second within a token or two of throughput_mps: Meta counts per second.
  double burst = std::max(2.0, st.throughput / 100.0);
  if (st.bucket)
    st.bucket->reconfigure(st.throughput, burst, now);
  else {
    st.bucket.emplace(st.throughput, burst, now);
    // Empty at the start: a restarted session must not add a burst to the second before it.
    while (st.bucket->try_take(now)) {
    }
  }
  if (token_changed && st.health.state() == domain::channel_state::token_invalid) {
    st.health.on_token_updated(now);
    sync_state(self, "access token replaced");
  }
  return true;
}

void start_running(channel_ptr self);

void load(channel_ptr self) {
  auto& st = self->state;
  self->request(st.deps->db->get(), st.deps->db_timeout, persistence::exec_atom::value,
                outbound_store::load_channel(st.tenant_id, st.channel_id))
      .then(
          [self](json& row) {
            auto& st = self->state;
            if (!apply_channel_row(self, row)) {
              self->quit(make_error(errc::internal, "cannot decrypt channel credentials"));
              return;
            }
            auto stored = domain::parse_channel_state(row["state"].get<std::string>());
            // Only a refused token survives a restart: other states are re-learned from the next
            // call.
            auto initial = stored == domain::channel_state::token_invalid
                               ? domain::channel_state::token_invalid
                               : domain::channel_state::connected;
            const auto& o = ocfg(self);
            domain::channel_health::options hopts;
            hopts.open_for = std::chrono::milliseconds(o.breaker_open_ms);
            st.health = domain::channel_health{hopts, initial};
            st.pairs.emplace(1000.0 / o.pair_interval_ms, static_cast<double>(o.pair_burst),
                             100000);
            sync_state(self);
            if (stored && *stored != initial)
              sync_state(self); // no-op; the stored row is corrected by the first change
            start_running(self);
          },
          [self](caf::error& err) {
            if (code_of(err) == errc::not_found) {
              // Deleted, or never the tenant's: end normally; callers get the reason.
              self->state.phase = "gone";
              self->set_default_handler(
                  [err](caf::scheduled_actor*, caf::message_view&) -> caf::result<caf::message> {
                    return err;
                  });
              self->send(self, stop_atom::value);
              return;
            }
            self->state.logger.warn(
                "cannot load channel, retrying",
                {{"channel_id", self->state.channel_id}, {"error", self->system().render(err)}});
            self->delayed_send(self, 1s, load_atom::value);
          });
}

void dispatch(channel_ptr self, outbox_item item);

void pump(channel_ptr self) {
  auto& st = self->state;
  if (st.phase != "running")
    return;
  auto now = self->clock().now();
  const int max_in_flight = ocfg(self).max_in_flight;
  while (static_cast<int>(st.flying.size()) < max_in_flight && !st.ready.empty()) {
    if (!st.health.allow_send(now)) {
      // Open breaker: one timer for the moment it may be probed (the probe handler checks).
      if (st.health.state() == domain::channel_state::disconnected && !st.probe_in_flight) {
        auto at = st.health.next_probe_at();
        if (at > now && at != domain::steady_time::max() && !st.probe_timer) {
          st.probe_timer = true;
          self->delayed_send(self, at - now, probe_atom::value);
        }
      }
      break;
    }
    if (st.health.should_probe(now)) {
      // The breaker's time is up: a health probe is the trial, not a burst of messages.
      probe(self);
      break;
    }
    if (auto wait = st.bucket->wait_time(now); wait > 0ns) {
      st.deps->m->token_waits->inc();
      schedule_pump(self, wait);
      break;
    }
    auto& front = st.ready.front();
    if (front.kind == "message" && !st.pairs->try_take(front.to, now)) {
      st.deps->m->pair_waits->inc();
      auto wait = st.pairs->wait_time(front.to, now);
      auto item = std::move(front);
      st.ready.pop_front();
      park(self, std::move(item), std::max(caf::timespan{1ms}, caf::timespan{wait}));
      continue;
    }
    st.bucket->try_take(now);
    auto item = std::move(front);
    st.ready.pop_front();
    dispatch(self, std::move(item));
  }
  if (st.more_in_db && st.ready.size() < outbox_page / 4)
    load_page(self);
}

void call_graph(channel_ptr self, int64_t id, int attempt);

/// Marks the call as started (durably) and then makes it: a crash in between is "in doubt".
void dispatch(channel_ptr self, outbox_item item) {
  auto& st = self->state;
  auto id = item.id;
  int attempt = item.attempts + 1;
  bool marked = item.premarked && attempt == 1;
  st.flying.emplace(id, std::move(item));
  if (marked)
    return call_graph(self, id, attempt);
  self->request(st.deps->writer->get(), caf::infinite, // answers every op (writer.hpp)
                persistence::persist_atom::value,
                persistence::write_op{outbound_store::dispatch_kind,
                                      json{{"outbox_id", id}, {"attempt", attempt}}})
      .then([self, id, attempt](json&) { call_graph(self, id, attempt); },
            [self, id](caf::error& err) {
              auto& st = self->state;
              auto it = st.flying.find(id);
              if (it == st.flying.end())
                return;
              st.logger.warn("cannot mark an outbound call, retrying later",
                             {{"channel_id", st.channel_id},
                              {"outbox_id", id},
                              {"error", self->system().render(err)}});
              auto item = std::move(it->second);
              st.flying.erase(it);
              park(self, std::move(item), 1s);
              pump(self);
            });
}

/// What the HTTP client hands back to the actor (it runs on the client's thread).
struct graph_reply {
  int64_t outbox_id = 0;
  int attempt = 0;
  int64_t started_ms = 0; ///< wall clock, for the attempt row
  std::chrono::nanoseconds latency{0};
  int http_status = 0;
  std::string body;
  std::string retry_after;
  std::string network_error; ///< empty when an HTTP answer came
  bool resent = false;       ///< the client wrote the request twice (stale keep-alive connection)
};

} // namespace
} // namespace parley

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::graph_reply)

namespace parley {
namespace {

using graph_reply_atom = caf::atom_constant<caf::atom("graphrep")>;
using probe_reply_atom = caf::atom_constant<caf::atom("proberep")>;

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Sends `req` and delivers the answer to the actor as (atom, graph_reply).
template <class Atom>
void http_call(channel_ptr self, http::client_request req, graph_reply base) {
  auto me = caf::actor_cast<caf::actor>(self);
  auto started = std::chrono::steady_clock::now();
  base.started_ms = wall_ms();
  self->state.deps->graph->send(std::move(req), [me, base, started](http::client_result r) mutable {
    base.latency = std::chrono::steady_clock::now() - started;
    if (auto* resp = std::get_if<http::client_response>(&r)) {
      base.http_status = resp->status;
      base.retry_after = resp->header("retry-after");
      base.resent = resp->resent;
      base.body = std::move(resp->body);
    } else {
      base.network_error = std::get<http::client_error>(r).message;
    }
    caf::anon_send(me, Atom::value, std::move(base));
  });
}

http::client_request graph_request(channel_ptr self, std::string method, std::string url,
                                   std::string body) {
  http::client_request req;
  req.method = std::move(method);
  req.url = std::move(url);
  req.body = std::move(body);
  req.headers.emplace_back("Authorization", "Bearer " + self->state.access_token);
  if (!req.body.empty())
    req.headers.emplace_back("Content-Type", "application/json");
  req.timeout = std::chrono::milliseconds(ocfg(self).request_timeout_ms);
  return req;
}

void send_graph(channel_ptr self, int64_t id, int attempt) {
  auto& st = self->state;
  auto it = st.flying.find(id);
  if (it == st.flying.end())
    return;
  graph_reply base;
  base.outbox_id = id;
  base.attempt = attempt;
  http_call<graph_reply_atom>(
      self, graph_request(self, "POST", st.messages_url, it->second.payload), std::move(base));
}

/// Calls leave at least 1/throughput_mps apart. The token bucket decides when work is started
/// (dispatch marks commit in batches, so several finish together); this spacing keeps the calls
/// themselves within throughput_mps over any second, as Meta counts them.
void call_graph(channel_ptr self, int64_t id, int attempt) {
  auto& st = self->state;
  auto now = self->clock().now();
  auto interval = std::chrono::duration_cast<caf::timespan>(
      std::chrono::duration<double>(1.0 / std::max(1, st.throughput)));
  if (st.next_call_at > now) {
    auto at = st.next_call_at;
    st.next_call_at += interval;
    self->delayed_send(self, at - now, call_atom::value, id, attempt);
    return;
  }
  st.next_call_at = now + interval;
  send_graph(self, id, attempt);
}

std::optional<std::chrono::milliseconds> parse_retry_after(const std::string& v) {
  if (v.empty() || v.size() > 9 || v.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::chrono::seconds(std::stoll(v));
}

domain::graph_result classify(const graph_reply& rep) {
  auto g = rep.network_error.empty() ? domain::classify_graph_response(rep.http_status, rep.body)
                                     : domain::classify_network_error(rep.network_error);
  g.retry_after = parse_retry_after(rep.retry_after);
  return g;
}

void record(channel_ptr self, int64_t id);

void on_graph_reply(channel_ptr self, graph_reply& rep) {
  auto& st = self->state;
  auto it = st.flying.find(rep.outbox_id);
  if (it == st.flying.end())
    return;
  auto item = std::move(it->second);
  st.flying.erase(it);
  auto* m = st.deps->m;
  m->graph_seconds->observe(std::chrono::duration<double>(rep.latency).count());
  auto now = self->clock().now();
  auto g = classify(rep);
  item.attempts = rep.attempt;
  if (rep.resent) {
    // Meta may have taken the first copy too: the same unavoidable window as a crash, counted
    // the same way.
    m->in_doubt->inc();
    auto fields = log_fields(self);
    fields["message_id"] = item.message_id;
    st.logger.warn("outbound call written twice on a stale connection, Meta may have it twice",
                   fields);
  }

  pending_record rec;
  std::string outcome{domain::to_string(g.outcome)};
  switch (g.outcome) {
  case domain::graph_outcome::sent:
    st.health.on_success(now);
    rec.final = true;
    m->attempts_sent->inc();
    break;
  case domain::graph_outcome::failed:
    // Meta answered: the session works, only this message cannot be sent.
    st.health.on_success(now);
    rec.final = true;
    m->attempts_failed->inc();
    break;
  case domain::graph_outcome::token_invalid:
    st.health.on_token_invalid(now);
    rec.token_invalid = true;
    m->attempts_token_invalid->inc();
    break;
  case domain::graph_outcome::retry:
    if (g.throttled)
      st.health.on_throttled(now);
    else
      st.health.on_failure(now);
    ++item.failures;
    if (domain::may_retry(retry_policy_of(self), item.failures)) {
      std::uniform_real_distribution<double> unit{0.0, 1.0};
      rec.delay =
          domain::retry_delay(retry_policy_of(self), item.failures, unit(st.rng), g.retry_after);
      m->attempts_retry->inc();
      m->retries->inc();
    } else {
      rec.final = true;
      outcome = "failed";
      m->attempts_failed->inc();
    }
    break;
  }
  sync_state(self, g.outcome == domain::graph_outcome::sent ? std::string{} : g.error_title);
  auto latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(rep.latency).count();
  auto nullable_int = [](const std::optional<int>& v) { return v ? json(*v) : json(nullptr); };
  rec.row = {{"outbox_id", item.id},
             {"attempt", rep.attempt},
             {"tenant_id", st.tenant_id},
             {"channel_id", st.channel_id},
             {"message_id", item.message_id},
             {"kind", item.kind},
             {"outcome", outcome},
             {"http_status", rep.http_status ? json(rep.http_status) : json(nullptr)},
             {"error_code", nullable_int(g.error_code)},
             {"error_title",
              g.outcome == domain::graph_outcome::sent ? json(nullptr) : json(g.error_title)},
             {"wamid", g.wamid.empty() ? json(nullptr) : json(g.wamid)},
             {"started_ms", rep.started_ms},
             {"latency_ms", latency_ms},
             {"final", rec.final},
             {"failures", item.failures},
             {"next_in_ms", rec.delay.count()}};
  if (outcome == "failed" || g.outcome == domain::graph_outcome::token_invalid) {
    auto fields = log_fields(self);
    fields["message_id"] = item.message_id;
    fields["attempt"] = rep.attempt;
    fields["outcome"] = outcome;
    fields["error_code"] = nullable_int(g.error_code);
    fields["error_title"] = g.error_title;
    st.logger.warn("outbound call failed", fields);
  }
  rec.result = std::move(g);
  rec.item = std::move(item);
  auto id = rec.item.id;
  st.recording[id] = std::move(rec);
  record(self, id);
  pump(self);
}

void record(channel_ptr self, int64_t id) {
  auto& st = self->state;
  auto it = st.recording.find(id);
  if (it == st.recording.end())
    return;
  self->request(st.deps->writer->get(), caf::infinite, // answers every op (writer.hpp)
                persistence::persist_atom::value,
                persistence::write_op{outbound_store::result_kind, it->second.row})
      .then(
          [self, id](json&) {
            auto& st = self->state;
            auto it = st.recording.find(id);
            if (it == st.recording.end())
              return;
            auto rec = std::move(it->second);
            st.recording.erase(it);
            if (rec.final) {
              st.known.erase(id);
              track_depth(self, -1);
              if (rec.item.kind == "message") {
                bool sent = rec.result.outcome == domain::graph_outcome::sent;
                if (sent)
                  st.deps->m->sent->inc();
                else
                  st.deps->m->failed(rec.result.error_code.value_or(0)).inc();
                if (wants_events(self)) {
                  json ev{{"id", rec.item.message_id},
                          {"channel_id", st.channel_id},
                          {"direction", "outbound"},
                          {"wa_message_id", sent ? json(rec.result.wamid) : json(nullptr)},
                          {"status", sent ? "sent" : "failed"}};
                  if (!sent)
                    ev["error"] = {{"code", rec.result.error_code ? json(*rec.result.error_code)
                                                                  : json(nullptr)},
                                   {"title", rec.result.error_title}};
                  publish(self, "message.status", ev);
                }
              }
            } else if (rec.token_invalid) {
              // Paused until a new token arrives; first in line when it does.
              st.ready.push_front(std::move(rec.item));
            } else {
              park(self, std::move(rec.item), rec.delay);
            }
            pump(self);
          },
          [self, id](caf::error& err) {
            // The outcome is known but not stored: store it later, never call Meta again for it.
            self->state.logger.warn("cannot record an outbound outcome, retrying",
                                    {{"channel_id", self->state.channel_id},
                                     {"outbox_id", id},
                                     {"error", self->system().render(err)}});
            self->delayed_send(self, 1s, rerecord_atom::value, id);
          });
}

void probe(channel_ptr self) {
  auto& st = self->state;
  if (st.phase != "running" || st.probe_in_flight)
    return;
  auto now = self->clock().now();
  if (st.health.should_probe(now))
    st.health.on_trial_started(now);
  st.probe_in_flight = true;
  graph_reply base;
  http_call<probe_reply_atom>(self, graph_request(self, "GET", st.health_url, {}), std::move(base));
}

void on_probe_reply(channel_ptr self, graph_reply& rep) {
  auto& st = self->state;
  st.probe_in_flight = false;
  st.deps->m->graph_seconds->observe(std::chrono::duration<double>(rep.latency).count());
  auto now = self->clock().now();
  std::string reason;
  if (rep.network_error.empty() && rep.http_status >= 200 && rep.http_status < 300) {
    st.health.on_success(now);
  } else {
    auto g = classify(rep);
    reason = g.error_title;
    if (g.outcome == domain::graph_outcome::token_invalid)
      st.health.on_token_invalid(now);
    else if (g.throttled)
      st.health.on_throttled(now);
    else
      st.health.on_failure(now);
  }
  sync_state(self, reason);
  pump(self);
}

/// The message as the API shows it right after acceptance (same shape as GET /v1/messages/{id}).
json accepted_message(channel_ptr self, const domain::outbound_request& req, const json& accepted) {
  const auto& st = self->state;
  return {
      {"id", accepted["message_id"]},
      {"conversation_id", accepted["conversation_id"]},
      {"channel_id", st.channel_id},
      {"direction", "outbound"},
      {"type", req.type},
      {"wa_message_id", nullptr},
      {"from", st.display_phone_number},
      {"to", accepted["to"]},
      {"content", req.content},
      {"context", nullptr},
      {"status", "pending"},
      {"attempts", 0},
      {"client_message_id", req.client_message_id ? json(*req.client_message_id) : json(nullptr)},
      {"timestamp", nullptr},
      {"created_at", accepted["created_at"]},
      {"sent_at", nullptr},
      {"delivered_at", nullptr},
      {"read_at", nullptr},
      {"failed_at", nullptr}};
}

errc reject_code(const std::string& code) {
  if (code == "not_found")
    return errc::not_found;
  if (code == "outside_window")
    return errc::outside_window;
  if (code == "plan_limit_exceeded")
    return errc::plan_limit_exceeded;
  return errc::unprocessable;
}

void enqueue(channel_ptr self, int64_t id, std::string message_id, std::string kind, std::string to,
             std::string payload, bool premarked) {
  // Straight to the queue unless a backlog is being paged in (the page brings it, in order).
  auto& st = self->state;
  if (st.more_in_db || !st.known.insert(id).second) {
    if (premarked)
      st.premarked.insert(id);
    return;
  }
  outbox_item item;
  item.id = id;
  item.message_id = std::move(message_id);
  item.kind = std::move(kind);
  item.to = std::move(to);
  item.payload = std::move(payload);
  item.premarked = premarked;
  track_depth(self, 1);
  st.ready.push_back(std::move(item));
  pump(self);
}

/// Validated request -> durable outbox row (window, idempotency and references checked in the
/// same transaction) -> answer; then the row joins the queue.
void accept_outbound(channel_ptr self, domain::outbound_request req,
                     caf::typed_response_promise<json> rp) {
  auto& st = self->state;
  bool is_read = req.type == "read";
  json payload = is_read ? domain::graph_read_payload("") : domain::graph_message_payload(req);
  json ref_id = nullptr, ref_wamid = nullptr;
  if (is_read || req.type == "reaction") {
    auto ref = req.content.value("message_id", std::string{});
    if (domain::is_uuid(ref)) {
      for (auto& c : ref)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      ref_id = ref;
    } else {
      ref_wamid = ref;
    }
  }
  json row{
      {"tenant_id", st.tenant_id},
      {"channel_id", st.channel_id},
      {"kind", is_read ? "read" : "message"},
      {"to", req.to},
      {"type", req.type},
      {"content", req.content},
      {"payload", payload},
      {"client_message_id", req.client_message_id ? json(*req.client_message_id) : json(nullptr)},
      {"ref_id", ref_id},
      {"ref_wamid", ref_wamid},
      {"needs_window", req.requires_window()}};
  // An idle channel with a token to spare will call as soon as the row is committed: the first
  // call is marked in the same transaction (two writes per message instead of three). The mark
  // only widens "in doubt" to a message accepted in the last moments before a crash.
  bool premark = st.phase == "running" && st.ready.empty() && !st.more_in_db &&
                 static_cast<int>(st.flying.size()) < ocfg(self).max_in_flight &&
                 st.health.allow_send(self->clock().now()) &&
                 st.bucket->wait_time(self->clock().now()) <= 0ns;
  row["dispatch"] = premark;
  self->request(st.deps->writer->get(), caf::infinite, // answers every op (writer.hpp)
                persistence::persist_atom::value,
                persistence::write_op{outbound_store::accept_kind, std::move(row)})
      .then(
          [self, rp, req = std::move(req), payload, premark](json& r) mutable {
            auto& st = self->state;
            if (auto it = r.find("reject"); it != r.end()) {
              rp.deliver(make_error(reject_code((*it)["code"].get<std::string>()),
                                    (*it)["message"].get<std::string>()));
              return;
            }
            auto message_id = r["message_id"].get<std::string>();
            if (r.value("duplicate", false)) {
              // The same client_message_id again: the message as it is now, nothing sent again.
              self->request(st.deps->db->get(), st.deps->db_timeout, persistence::exec_atom::value,
                            conversation_store::message(st.tenant_id, message_id))
                  .then(
                      [rp](json& msg) mutable {
                        rp.deliver(json{{"status", 200}, {"body", std::move(msg)}});
                      },
                      [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
              return;
            }
            bool is_read = req.type == "read";
            // The store resolved references (reaction target, message read) into the payload.
            auto stored_payload = r.contains("payload") ? r["payload"] : payload;
            json body = is_read ? json{{"id", message_id}, {"read_receipt", "pending"}}
                                : accepted_message(self, req, r);
            if (!is_read && wants_events(self))
              publish(self, "message.created", body);
            rp.deliver(json{{"status", 202}, {"body", std::move(body)}});
            enqueue(self, r["outbox_id"].get<int64_t>(), message_id, is_read ? "read" : "message",
                    r["to"].get<std::string>(), stored_payload.dump(), premark);
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
}

void start_running(channel_ptr self) {
  auto& st = self->state;
  st.phase = "running";
  self->set_default_handler(caf::print_and_drop);
  self->become(
      [self](send_atom, domain::outbound_request& req) -> caf::result<json> {
        auto rp = self->make_response_promise<json>();
        accept_outbound(self, std::move(req), rp);
        return rp;
      },
      [self](graph_reply_atom, graph_reply& rep) { on_graph_reply(self, rep); },
      [self](probe_reply_atom, graph_reply& rep) { on_probe_reply(self, rep); },
      [self](pump_atom) {
        self->state.pump_scheduled = false;
        pump(self);
      },
      [self](requeue_atom, int64_t id) {
        auto& st = self->state;
        auto it = st.parked.find(id);
        if (it == st.parked.end())
          return;
        st.ready.push_back(std::move(it->second));
        st.parked.erase(it);
        pump(self);
      },
      [self](rerecord_atom, int64_t id) { record(self, id); },
      [self](call_atom, int64_t id, int attempt) { send_graph(self, id, attempt); },
      [self](load_atom) { load_page(self); },
      [self](probe_atom) {
        auto& st = self->state;
        st.probe_timer = false;
        if (st.health.state() == domain::channel_state::disconnected &&
            !st.health.should_probe(self->clock().now()))
          return; // an early timer; the breaker's own time comes later
        probe(self);
      },
      [self](tick_atom) {
        // Periodic session check; also wakes a token_invalid channel whose token was fixed at Meta.
        probe(self);
        self->delayed_send(self, std::chrono::seconds(ocfg(self).health_interval_s),
                           tick_atom::value);
      },
      [self](reload_atom) -> caf::result<bool> {
        auto& st = self->state;
        auto rp = self->make_response_promise<bool>();
        self->request(st.deps->db->get(), st.deps->db_timeout, persistence::exec_atom::value,
                      outbound_store::load_channel(st.tenant_id, st.channel_id))
            .then(
                [self, rp](json& row) mutable {
                  bool ok = apply_channel_row(self, row);
                  pump(self);
                  auto& st = self->state;
                  if (st.health.state() != domain::channel_state::connected)
                    probe(self);
                  // Answer once the state is stored, so the caller reads what the session is now.
                  self->request(
                          st.deps->db->get(), st.deps->db_timeout, persistence::exec_atom::value,
                          outbound_store::set_channel_state(
                              st.tenant_id, st.channel_id,
                              std::string{domain::to_string(st.health.state())}, st.state_reason))
                      .then([rp, ok](json&) mutable { rp.deliver(ok); },
                            [rp, ok](caf::error&) mutable { rp.deliver(ok); });
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [self](status_atom) {
        auto& st = self->state;
        return json{{"state", st.phase},
                    {"session", domain::to_string(st.health.state())},
                    {"mailbox", self->mailbox().size()},
                    {"outbox", st.known.size()},
                    {"in_flight", st.flying.size()}};
      });
  self->delayed_send(self, std::chrono::seconds(ocfg(self).health_interval_s), tick_atom::value);
  load_page(self);
}

caf::behavior channel_impl(channel_ptr self, const channel_deps* deps, std::string tenant_id,
                           std::string channel_id, std::string parent_path) {
  auto& st = self->state;
  st.deps = deps;
  st.tenant_id = std::move(tenant_id);
  st.channel_id = std::move(channel_id);
  if (deps->tree)
    deps->tree->enroll(self, {"channel", st.channel_id, parent_path});
  self->attach_functor([m = deps->m, gauges = st.gauges, id = st.channel_id] {
    if (gauges->first >= 0)
      m->states[gauges->first]->dec();
    m->outbox_depth->dec(static_cast<double>(gauges->second));
    if (gauges->second != 0)
      m->channel_depth(id).set(0); // the next incarnation counts what it reloads
  });
  self->set_default_handler(caf::skip);
  load(self);
  return {
      [self](load_atom) { load(self); },
      [self](stop_atom) { self->quit(); },
      [self](status_atom) {
        return json{{"state", self->state.phase}, {"mailbox", self->mailbox().size()}};
      },
  };
}

} // namespace

caf::actor spawn_channel(caf::actor_system& sys, const channel_deps* deps, std::string tenant_id,
                         std::string channel_id, std::string parent_path) {
  return sys.spawn(channel_impl, deps, std::move(tenant_id), std::move(channel_id),
                   std::move(parent_path));
}

} // namespace parley
