#include <chrono>
#include <mutex>
#include <unordered_map>

#include "actors/channel_store.hpp"
#include "actors/edge/rate_limits.hpp"
#include "actors/edge/routes.hpp"
#include "actors/edge/support.hpp"
#include "actors/interfaces.hpp"
#include "domain/crypto.hpp"
#include "persistence/journal.hpp"
#include "runtime/ask.hpp"
#include "runtime/logging.hpp"

namespace parley::edge {

namespace {

/// Per-channel app secrets, decrypted once and kept for a minute: signature checks run on every
/// webhook and must not cost a database round trip each. Guarded by a mutex because I/O threads
/// and CAF workers both touch it; entries are tiny and the lock is held for a map look-up only.
class secret_cache {
public:
  std::optional<std::string> get(const std::string& channel_id) {
    std::lock_guard<std::mutex> guard{mtx_};
    auto it = entries_.find(channel_id);
    if (it == entries_.end() || it->second.until < std::chrono::steady_clock::now())
      return std::nullopt;
    return it->second.secret;
  }
  void put(const std::string& channel_id, std::string secret) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (entries_.size() > 100000)
      entries_.clear();
    entries_[channel_id] = {std::move(secret),
                            std::chrono::steady_clock::now() + std::chrono::seconds(60)};
  }

private:
  struct entry {
    std::string secret;
    std::chrono::steady_clock::time_point until;
  };
  std::mutex mtx_;
  std::unordered_map<std::string, entry> entries_;
};

struct webhook_edge {
  context_ptr ctx;
  secret_cache secrets;
  metrics::counter* accepted;
  metrics::counter* bad_signature;
  metrics::counter* unavailable;
  metrics::histogram* ack_seconds;
  /// The 200 of every accepted webhook, built once.
  http::response received = http::response::json(200, {{"status", "received"}});
  log::logger logger{"webhook"};
};

using edge_ptr = std::shared_ptr<webhook_edge>;

/// Hands the signed webhook to the journal and answers 200 once it is committed; ingest
/// processes it from there (persistence/journal.hpp). The journal calls back on its own thread;
/// the responder is thread-safe.
void accept(const edge_ptr& edge, http::request&& req, http::responder respond,
            std::string channel_id) {
  auto started = std::chrono::steady_clock::now();
  auto journal = edge->ctx->journal->get();
  auto unavailable = [edge, respond](const std::string& request_id, const std::string& why) {
    // Not durable, so not acknowledged: Meta retries later.
    edge->unavailable->inc();
    edge->logger.warn("webhook not stored", {{"request_id", request_id}, {"error", why}});
    auto resp = http::response::from_error(errc::storage_unavailable,
                                           "the webhook could not be stored; retry later");
    resp.headers.emplace_back("Retry-After", "1");
    respond(std::move(resp));
  };
  if (!journal)
    return unavailable(req.request_id, "the journal is starting or restarting");
  persistence::journal_entry entry;
  entry.body = std::move(req.body);
  entry.channel_id = std::move(channel_id);
  entry.request_id = req.request_id;
  entry.done = [edge, respond, started, unavailable,
                request_id = req.request_id](int64_t, const caf::error& err) {
    if (err)
      return unavailable(request_id, message_of(err));
    respond(edge->received);
    edge->accepted->inc();
    edge->ack_seconds->observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  };
  caf::anon_send(journal, persistence::journal_atom::value, std::move(entry));
}

void reject_signature(const edge_ptr& edge, const http::request& req, http::responder& respond,
                      std::string_view why) {
  edge->bad_signature->inc();
  edge->logger.warn(
      "webhook signature rejected",
      {{"request_id", req.request_id}, {"remote_ip", req.remote_ip}, {"reason", why}});
  // Only failures count against the address: Meta's well-signed traffic is never throttled.
  authentication_failed(*edge->ctx, client_address(*edge->ctx, req), respond,
                        http::response::from_error(errc::unauthorized, why));
}

void verify(const edge_ptr& edge, http::request&& req, http::responder respond) {
  const auto& wa = edge->ctx->cfg->whatsapp;
  auto q = [&](const char* k) {
    auto it = req.query.find(k);
    return it == req.query.end() ? std::string{} : it->second;
  };
  if (q("hub.mode") != "subscribe")
    return respond(http::response::error(400, "invalid_request",
                                         "query parameter 'hub.mode' must be 'subscribe'"));
  if (wa.verify_token.empty() ||
      !crypto::constant_time_equal(q("hub.verify_token"), wa.verify_token))
    return respond(http::response::error(403, "forbidden",
                                         "hub.verify_token does not match the "
                                         "configured whatsapp.verify_token"));
  http::response resp;
  resp.status = 200;
  resp.content_type = "text/plain; charset=utf-8";
  resp.body = q("hub.challenge");
  respond(std::move(resp));
}

void platform_webhook(const edge_ptr& edge, http::request&& req, http::responder respond) {
  const auto& secret = edge->ctx->cfg->whatsapp.app_secret;
  auto sig = req.header("x-hub-signature-256");
  if (sig.empty())
    return reject_signature(edge, req, respond, "missing X-Hub-Signature-256 header");
  if (secret.empty())
    return reject_signature(edge, req, respond,
                            "this node has no whatsapp.app_secret configured; use "
                            "/webhooks/whatsapp/{channel_id} with the channel's app secret");
  if (!crypto::verify_meta_signature(secret, req.body, sig))
    return reject_signature(
        edge, req, respond,
        "X-Hub-Signature-256 does not match the body signed with the app secret");
  accept(edge, std::move(req), std::move(respond), "");
}

void channel_webhook(const edge_ptr& edge, http::request&& req, http::responder respond) {
  auto channel_id = uuid_param(req, "channel_id", "channel");
  auto sig = std::string{req.header("x-hub-signature-256")};
  if (sig.empty())
    return reject_signature(edge, req, respond, "missing X-Hub-Signature-256 header");
  auto check = [edge, sig, channel_id](http::request&& req, http::responder respond,
                                       const std::string& secret) {
    if (!crypto::verify_meta_signature(secret, req.body, sig))
      return reject_signature(edge, req, respond,
                              "X-Hub-Signature-256 does not match the body signed with the "
                              "channel's app secret");
    accept(edge, std::move(req), std::move(respond), channel_id);
  };
  if (auto cached = edge->secrets.get(channel_id))
    return check(std::move(req), std::move(respond), *cached);
  auto shared_req = std::make_shared<http::request>(std::move(req));
  runtime::ask<nlohmann::json>(
      *edge->ctx->relays, edge->ctx->db->get(), edge->ctx->db_timeout,
      [edge, shared_req, respond, channel_id, check](nlohmann::json& row) {
        std::string secret = edge->ctx->cfg->whatsapp.app_secret; // channels without their own
        if (row["app_secret_enc"].is_string()) {
          auto opened = edge->ctx->secrets->open(row["app_secret_enc"].get<std::string>());
          if (!opened) {
            edge->logger.error("channel app secret cannot be decrypted (wrong master key?)",
                               {{"channel_id", channel_id}});
            return respond(
                http::response::from_error(errc::internal, "channel secret unavailable"));
          }
          secret = std::move(*opened);
        }
        edge->secrets.put(channel_id, secret);
        check(std::move(*shared_req), respond, secret);
      },
      [respond](caf::error& err) { reply_error(respond, err); }, persistence::exec_atom::value,
      channel_store::webhook_secret(channel_id));
}

} // namespace

void add_webhook_routes(http::router& r, const context_ptr& ctx) {
  auto edge = std::make_shared<webhook_edge>();
  edge->ctx = ctx;
  auto& reg = *ctx->metrics;
  edge->accepted = &reg.get_counter(
      "parley_webhooks_total", "Webhooks by outcome (accepted at the edge; the rest after parsing)",
      {{"outcome", "accepted"}});
  edge->bad_signature = &reg.get_counter(
      "parley_webhooks_total", "Webhooks by outcome (accepted at the edge; the rest after parsing)",
      {{"outcome", "bad_signature"}});
  edge->unavailable = &reg.get_counter(
      "parley_webhooks_total", "Webhooks by outcome (accepted at the edge; the rest after parsing)",
      {{"outcome", "storage_unavailable"}});
  edge->ack_seconds = &reg.get_histogram("parley_webhook_ack_seconds",
                                         "From a signed webhook's arrival to its durable 200");
  auto bind = [edge](void (*fn)(const edge_ptr&, http::request&&, http::responder)) {
    return guarded([edge, fn](http::request&& req, http::responder respond) {
      fn(edge, std::move(req), std::move(respond));
    });
  };
  r.add("GET", "/webhooks/whatsapp", bind(verify));
  r.add("POST", "/webhooks/whatsapp", bind(platform_webhook));
  r.add("POST", "/webhooks/whatsapp/{channel_id}", bind(channel_webhook));
}

} // namespace parley::edge
