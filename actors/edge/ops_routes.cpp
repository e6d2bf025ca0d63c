#include "actors/edge/actor_status.hpp"
#include "actors/edge/routes.hpp"
#include "actors/edge/support.hpp"
#include "runtime/ask.hpp"

namespace parley::edge {

namespace {

http::response unready(std::string_view why, std::string_view code = "storage_unavailable") {
  auto resp = http::response::error(503, code, why);
  resp.headers.emplace_back("Retry-After", "1");
  return resp;
}

void ready(const context_ptr& ctx, http::request&&, http::responder respond) {
  if (ctx->draining->load())
    return respond(unready("this node is draining", "shutting_down"));
  runtime::ask<bool>(
      *ctx->relays, ctx->db->get(), std::chrono::seconds(2),
      [respond](bool ok) {
        if (ok)
          respond(
              http::response::json(200, {{"status", "ready"}, {"checks", {{"database", "ok"}}}}));
        else
          respond(unready("database unreachable"));
      },
      [respond](caf::error&) { respond(unready("database unreachable")); },
      persistence::health_atom::value);
}

/// Refreshes the gauges derived from the actor tree, then renders every metric.
void metrics_route(const context_ptr& ctx, http::request&&, http::responder respond) {
  collect_actor_status(ctx, [ctx, respond](nlohmann::json tree) {
    std::map<std::string, double> alive, mailbox_sum, mailbox_max, restarts;
    for (const auto& a : tree["actors"]) {
      auto kind = a["kind"].get<std::string>();
      alive[kind] += 1;
      restarts[kind] += a["restarts"].get<double>();
      if (a["mailbox"].is_number()) {
        auto m = a["mailbox"].get<double>();
        mailbox_sum[kind] += m;
        mailbox_max[kind] = std::max(mailbox_max[kind], m);
      }
    }
    auto& reg = *ctx->metrics;
    for (auto& [kind, n] : alive) {
      reg.get_gauge("parley_actors_alive", "Live actors by kind", {{"kind", kind}}).set(n);
      reg.get_gauge("parley_actor_mailbox_depth", "Messages waiting in mailboxes, summed by kind",
                    {{"kind", kind}})
          .set(mailbox_sum[kind]);
      reg.get_gauge("parley_actor_mailbox_depth_max", "Deepest mailbox by kind", {{"kind", kind}})
          .set(mailbox_max[kind]);
      reg.get_gauge("parley_actor_restarts", "Restarts of live actors' logical paths, by kind",
                    {{"kind", kind}})
          .set(restarts[kind]);
    }
    // Kinds that disappeared read 0 rather than their last value.
    for (const auto& kind : {"tenant", "tenant_registry", "supervisor"})
      if (!alive.count(kind))
        reg.get_gauge("parley_actors_alive", "Live actors by kind", {{"kind", kind}}).set(0);
    http::response resp;
    resp.status = 200;
    resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp.body = reg.render();
    respond(std::move(resp));
  });
}

} // namespace

void add_ops_routes(http::router& r, const context_ptr& ctx) {
  r.add("GET", "/health/live", [](http::request&&, http::responder respond) {
    respond(http::response::json(200, {{"status", "live"}}));
  });
  r.add("GET", "/health/ready", [ctx](http::request&& req, http::responder respond) {
    ready(ctx, std::move(req), std::move(respond));
  });
  r.add("GET", "/metrics", [ctx](http::request&& req, http::responder respond) {
    metrics_route(ctx, std::move(req), std::move(respond));
  });
}

} // namespace parley::edge
