#include "actors/bootstrap.hpp"

#include <algorithm>
#include <csignal>
#include <thread>

#include <caf/actor_pool.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <pqxx/except>

#include "actors/channel.hpp"
#include "actors/conversation.hpp"
#include "actors/edge/context.hpp"
#include "actors/edge/key_cache.hpp"
#include "actors/edge/routes.hpp"
#include "actors/inbound_store.hpp"
#include "actors/ingest.hpp"
#include "actors/interfaces.hpp"
#include "actors/key_rotation.hpp"
#include "actors/outbound_store.hpp"
#include "actors/rate_limiter.hpp"
#include "actors/tenant.hpp"
#include "domain/crypto.hpp"
#include "http/client.hpp"
#include "http/metrics_observer.hpp"
#include "http/server.hpp"
#include "persistence/db_pool.hpp"
#include "persistence/isolation_check.hpp"
#include "persistence/journal.hpp"
#include "persistence/migrations.hpp"
#include "persistence/writer.hpp"
#include "persistence/writer_routing.hpp"
#include "runtime/ask.hpp"
#include "runtime/event_hub.hpp"
#include "runtime/logging.hpp"
#include "runtime/supervisor.hpp"

namespace parley {

namespace {

/// Migrations run before anything listens. PostgreSQL may still be starting (systemd, make run),
/// so connection failures are retried for a while before giving up with the reason.
int migrate_with_retry(const config::parley_config& cfg, const log::logger& logger) {
  constexpr int attempts = 30;
  for (int i = 1;; ++i) {
    try {
      // Migrations run as the tables' owner; the node itself serves as the application role.
      int applied =
          persistence::migrate(cfg.db.migrate_url.empty() ? cfg.db.url : cfg.db.migrate_url);
      logger.info("migrations applied", {{"applied", applied}});
      return 0;
    } catch (const pqxx::broken_connection& e) {
      if (i == attempts) {
        logger.error("database unreachable, giving up", {{"error", e.what()}, {"attempts", i}});
        return 1;
      }
      logger.warn("database not reachable yet, retrying", {{"attempt", i}, {"error", e.what()}});
      std::this_thread::sleep_for(std::chrono::seconds(1));
    } catch (const std::exception& e) {
      {
        logger.error("migration failed", {{"error", e.what()}});
        return 1;
      }
    }
  }
}

/// Tenant isolation rests on Row Level Security, which a superuser, a BYPASSRLS role or the
/// tables' owner escapes (the owner could disable it). Refuse to serve with such a db.url unless
/// the operator explicitly accepted it; refuse always if a tenant table lacks RLS.
int check_isolation(const config::parley_config& cfg, const log::logger& logger) {
  persistence::isolation_report r;
  try {
    r = persistence::inspect_isolation(cfg.db.url);
  } catch (const std::exception& e) {
    logger.error("cannot check tenant isolation", {{"error", e.what()}});
    return 1;
  }
  if (!r.unprotected_tables.empty()) {
    logger.error("refusing to start: tenant tables without Row Level Security enabled and forced "
                 "(run `parley migrate` as the tables' owner)",
                 {{"tables", r.unprotected_tables}});
    return 1;
  }
  if (!r.can_bypass())
    return 0;
  if (!cfg.db.allow_rls_bypass) {
    logger.error("refusing to start: db.url can bypass Row Level Security, so tenants would be "
                 "isolated by application checks alone. Connect db.url as a member of parley_app "
                 "that is neither superuser, BYPASSRLS nor the tables' owner, and run migrations "
                 "with db.migrate_url (docs/operations.md); or set db.allow_rls_bypass=true "
                 "to accept the risk",
                 {{"reason", r.bypass_reason()}});
    return 1;
  }
  logger.warn("TENANT ISOLATION DEGRADED: db.url bypasses Row Level Security "
              "(db.allow_rls_bypass=true); only application checks separate tenants",
              {{"reason", r.bypass_reason()}});
  return 0;
}

/// A published child (see runtime::published_child) that is also shown in the actor tree: the
/// persistence actors do not know the tree themselves.
runtime::child_spec slot_child(std::string id, std::string kind, runtime::actor_slot* slot,
                               runtime::actor_tree* tree,
                               std::function<caf::actor(caf::actor_system&)> make) {
  return runtime::published_child(
      id, kind, slot,
      [tree, id, kind, make = std::move(make)](caf::actor_system& sys, const std::string& parent) {
        auto a = make(sys);
        tree->enroll(a, {kind, id, parent});
        return a;
      });
}

/// Acknowledged webhooks may still be on their way into conversations: let ingest finish them
/// (bounded), so a clean stop leaves nothing for the next start to replay.
bool wait_for_ingest(caf::actor_system& sys, runtime::actor_slot& ingest,
                     std::chrono::milliseconds timeout) {
  caf::scoped_actor self{sys};
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int64_t in_flight = 0;
    self->request(ingest.get(), std::chrono::seconds(1), status_atom::value)
        .receive([&](nlohmann::json& st) { in_flight = st.value("events_in_flight", int64_t{0}); },
                 [&](caf::error&) { in_flight = 0; });
    if (in_flight == 0)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

/// The inbound writer: messages and statuses from ingest, after their webhooks' 200. Nobody
/// waits for these commits, so a batch starts at most every ingest.batch_interval_ms and holds
/// what arrived meanwhile (up to ingest.batch_max_rows): at moderate load too, hundreds of rows
/// per statement instead of the few that arrive during one short commit.
caf::actor spawn_inbound_writer(caf::actor_system& sys, const config::parley_config& cfg,
                                metrics::registry& registry) {
  auto opts = persistence::make_writer_options(cfg.db, inbound_store::batch_handlers());
  opts.max_rows = static_cast<size_t>(cfg.ingest.batch_max_rows);
  opts.max_delay = std::chrono::milliseconds(cfg.ingest.batch_interval_ms);
  opts.min_interval = std::chrono::milliseconds(cfg.ingest.batch_interval_ms);
  return persistence::spawn_writer(sys, cfg.db, std::move(opts), registry);
}

/// Activates every tenant that has channels, so outboxes left by a crash are re-driven and
/// sessions are checked without waiting for traffic.
void activate_channel_tenants(runtime::relay_pool& relays, runtime::actor_slot& db,
                              runtime::actor_slot& tenants, caf::timespan timeout,
                              const log::logger& logger) {
  runtime::ask<nlohmann::json>(
      relays, db.get(), timeout,
      [&tenants](nlohmann::json& ids) {
        for (const auto& id : ids)
          caf::anon_send(tenants.get(), tenant_atom::value, id.get<std::string>());
      },
      [logger](caf::error& err) {
        logger.warn("cannot list tenants with channels; their sessions start on first use",
                    {{"error", message_of(err)}});
      },
      persistence::exec_atom::value, outbound_store::tenants_with_channels());
}

int wait_for_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

} // namespace

int migrate(const config::parley_config& cfg) {
  log::init(cfg.log.level);
  return migrate_with_retry(cfg, log::logger{"migrate"});
}

int serve(const config::parley_config& cfg) {
  log::init(cfg.log.level);
  log::logger logger{"node"};
  logger.info("starting parley", {{"config", nlohmann::json::parse(config::redacted_json(cfg))}});
  if (migrate_with_retry(cfg, logger) != 0)
    return 1;
  if (check_isolation(cfg, logger) != 0)
    return 1;

  // Validated by the config: 64 hex chars per key, distinct versions.
  const crypto::secret_box secrets = make_secret_box(cfg.security);

  // Objects that outlive every actor: actors hold raw pointers to them.
  metrics::registry registry;
  runtime::actor_tree tree;
  // Destroyed after the HTTP server (declared before it): Redis answers may still complete
  // requests until the server has drained.
  rate_limiter limiter{cfg.ratelimit, cfg.redis.url, registry};
  runtime::actor_slot db_slot, writer_slot, inbound_writer_slot, tenants_slot, ingest_slot,
      journal_slot;
  std::atomic<bool> draining{false};
  // Outlives the actors that publish and the HTTP server whose streams subscribe.
  runtime::event_hub events;

  caf::actor_system_config sys_cfg;
  sys_cfg.set("scheduler.max-threads", cfg.runtime.scheduler_threads);
  // An idle CAF worker first spins, then (CAF's "moderate" phase) sleeps 50 us between polls,
  // then waits on a condition variable that new work from outside the workers signals. Each
  // of those sleeps is a system call, and on a hypervisor where system calls are dear that
  // phase cost more than it saved (docs/performance.md, session 13).
  sys_cfg.set("work-stealing.moderate-poll-attempts",
              static_cast<size_t>(cfg.runtime.scheduler_moderate_polls));
  sys_cfg.set("logger.verbosity", caf::atom("quiet"));
  sys_cfg.set("logger.console", caf::atom("none"));
  {
    caf::actor_system sys{sys_cfg};

    // Declared after the actor system so it is destroyed first: its pending callbacks hold actor
    // handles, which must not outlive the system.
    http::client_options graph_opts;
    graph_opts.io_threads = 1;
    graph_opts.max_connections_per_host = static_cast<size_t>(cfg.outbound.http_connections);
    graph_opts.default_timeout = std::chrono::milliseconds(cfg.outbound.request_timeout_ms);
    graph_opts.ca_file = cfg.whatsapp.graph_ca_file;
    std::unique_ptr<http::client> graph;
    try {
      graph = std::make_unique<http::client>(graph_opts);
    } catch (const std::exception& e) {
      logger.error("cannot set up the Graph API client", {{"error", e.what()}});
      return 1;
    }
    graph->start();
    outbound_metrics out_metrics{registry};

    channel_deps chan_deps;
    chan_deps.writer = &writer_slot;
    chan_deps.db = &db_slot;
    chan_deps.graph = graph.get();
    chan_deps.secrets = &secrets;
    chan_deps.cfg = &cfg;
    chan_deps.db_timeout = std::chrono::milliseconds(cfg.db.request_timeout_ms);
    chan_deps.tree = &tree;
    chan_deps.m = &out_metrics;
    chan_deps.events = &events;

    conversation_deps conv_deps;
    conv_deps.writer = &inbound_writer_slot;
    conv_deps.events = &events;
    conv_deps.idle_timeout = std::chrono::seconds(cfg.runtime.conversation_idle_timeout_s);
    conv_deps.active = &registry.get_gauge("parley_conversation_actors_active",
                                           "Conversation actors currently activated");
    conv_deps.passivated = &registry.get_counter("parley_conversation_actors_passivated_total",
                                                 "Conversation actors passivated after idling");

    tenant_deps deps;
    deps.conversations = &conv_deps;
    deps.channels = &chan_deps;
    deps.db = &db_slot;
    deps.tree = &tree;
    deps.db_timeout = std::chrono::milliseconds(cfg.db.request_timeout_ms);
    deps.max_restarts = static_cast<size_t>(cfg.runtime.supervisor_max_restarts);
    deps.restart_window = std::chrono::seconds(cfg.runtime.supervisor_window_s);
    deps.sweep_interval = std::chrono::seconds(cfg.runtime.tenant_sweep_interval_s);
    deps.sweep_horizon = std::chrono::hours(cfg.runtime.tenant_sweep_horizon_h);

    runtime::supervisor_options root_opts;
    root_opts.id = "root";
    root_opts.strat = runtime::strategy::one_for_one;
    root_opts.max_restarts = static_cast<size_t>(cfg.runtime.supervisor_max_restarts);
    root_opts.window = std::chrono::seconds(cfg.runtime.supervisor_window_s);
    root_opts.tree = &tree;
    auto root = runtime::spawn_supervisor(
        sys, root_opts,
        {
            slot_child("db_pool", "db_pool", &db_slot, &tree,
                       [&cfg, &registry](caf::actor_system& s) {
                         return persistence::spawn_db_pool(s, cfg.db, registry);
                       }),
            slot_child("db_writer", "db_writer", &writer_slot, &tree,
                       [&cfg, &registry](caf::actor_system& s) {
                         // One writer by default: its batches hold everything that arrived
                         // during the previous commit, and a large batch costs PostgreSQL far
                         // less per row than two half-size ones running side by side
                         // (docs/performance.md). More writers commit in parallel, round-robin,
                         // for machines with cores to spare.
                         auto make = [&cfg, &registry, &s] {
                           auto opts = persistence::make_writer_options(
                               cfg.db, outbound_store::batch_handlers());
                           // Accepting sends locks the tenants' monthly usage counters: the
                           // shorter the rest of the transaction after it, the less the
                           // writers wait for each other.
                           opts.late_kinds.insert(outbound_store::accept_kind);
                           return persistence::spawn_writer(s, cfg.db, std::move(opts), registry);
                         };
                         if (cfg.db.writers <= 1)
                           return make();
                         // Outbound kinds meet in few writers (more rows per statement);
                         // a tenant's accepts, which lock its usage counter until COMMIT,
                         // always in the same one. Results and dispatch marks take the last
                         // writer, accepts the others.
                         auto n = static_cast<size_t>(cfg.db.writers);
                         persistence::writer_routing routing{
                             {{outbound_store::accept_kind, {0, std::max<size_t>(1, n - 1)}},
                              {outbound_store::dispatch_kind, {n - 1, 1}},
                              {outbound_store::result_kind, {n - 1, 1}}}};
                         return caf::actor_pool::make(s.dummy_execution_unit(),
                                                      static_cast<size_t>(cfg.db.writers), make,
                                                      routing.policy());
                       }),
            slot_child("inbound_writer", "db_writer", &inbound_writer_slot, &tree,
                       [&cfg, &registry](caf::actor_system& s) {
                         return spawn_inbound_writer(s, cfg, registry);
                       }),
            tenant_registry_spec(deps, &tenants_slot),
            ingest_spec(ingest_deps{&db_slot, &inbound_writer_slot, &tenants_slot, &tree, &registry,
                                    std::chrono::milliseconds(cfg.db.request_timeout_ms) * 2,
                                    std::chrono::seconds(30), 30, 5, cfg.retention.raw_event_days,
                                    static_cast<size_t>(cfg.ingest.max_in_flight),
                                    static_cast<size_t>(cfg.ingest.max_queued_mb) << 20},
                        &ingest_slot),
            // Webhooks become durable here before their 200; committed batches go to ingest.
            slot_child("journal", "journal", &journal_slot, &tree,
                       [&cfg, &registry, &ingest_slot](caf::actor_system& s) {
                         return persistence::spawn_journal(
                             s, cfg.db, persistence::make_journal_options(cfg.db, &ingest_slot),
                             registry);
                       }),
        });
    // The root ending means the node cannot work; watch it so the process exits instead of
    // serving errors forever.
    std::atomic<bool> root_failed{false};
    root->attach_functor([&root_failed](const caf::error& reason) {
      if (reason && reason != caf::exit_reason::user_shutdown) {
        root_failed = true;
        kill(getpid(), SIGTERM);
      }
    });

    // The root starts its children on its first run (a worker thread); serve only once every
    // slot holds a live actor.
    for (int i = 0; i < 1000 && !(db_slot.get() && writer_slot.get() && inbound_writer_slot.get() &&
                                  tenants_slot.get() && ingest_slot.get() && journal_slot.get());
         ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));

    // Resolved API keys live 5 s: revocations elsewhere in a cluster take effect within that.
    edge::api_key_cache key_cache{std::chrono::seconds(5)};
    // One relay per scheduler thread: enough to keep the workers busy, few enough to stay warm.
    runtime::relay_pool relays{sys,
                               static_cast<size_t>(std::max(1, cfg.runtime.scheduler_threads))};
    auto ctx = std::make_shared<edge::context>();
    ctx->sys = &sys;
    ctx->relays = &relays;
    ctx->cfg = &cfg;
    ctx->db = &db_slot;
    ctx->writer = &writer_slot;
    ctx->tenants = &tenants_slot;
    ctx->ingest = &ingest_slot;
    ctx->journal = &journal_slot;
    ctx->tree = &tree;
    ctx->metrics = &registry;
    ctx->secrets = &secrets;
    ctx->jwt_secret = jwt_secret_of(cfg.security);
    ctx->limiter = &limiter;
    ctx->key_cache = &key_cache;
    ctx->draining = &draining;
    ctx->events = &events;
    ctx->db_timeout = std::chrono::milliseconds(cfg.db.request_timeout_ms);
    ctx->actor_timeout = std::chrono::milliseconds(cfg.http.request_timeout_ms);

    auto router = std::make_shared<http::router>();
    edge::add_ops_routes(*router, ctx);
    edge::add_admin_routes(*router, ctx);
    edge::add_tenant_routes(*router, ctx);
    edge::add_outbound_routes(*router, ctx);
    edge::add_user_routes(*router, ctx);
    edge::add_webhook_routes(*router, ctx);

    http::server server{http::make_server_options(cfg.http), router,
                        std::make_shared<http::metrics_observer>(registry)};
    try {
      server.start();
    } catch (const std::exception& e) {
      logger.error("cannot listen", {{"error", e.what()}});
      caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
      return 1;
    }
    activate_channel_tenants(relays, db_slot, tenants_slot, ctx->db_timeout, logger);
    logger.info("listening", {{"address", cfg.http.address}, {"port", server.port()}});

    int sig = wait_for_signal();
    // Shutdown in reverse order of start: stop taking requests, let in-flight ones finish
    // (they need the actors), then stop the actors (writers flush what they hold).
    logger.info("draining", {{"signal", sig}});
    draining = true;
    server.stop_accepting();
    bool drained = server.drain(std::chrono::milliseconds(cfg.http.drain_timeout_ms));
    server.stop();
    // Redis answers complete requests (spawning ask actors) from the limiter's own thread; CAF
    // 0.17's actor_system destructor was seen to wait forever while that thread still ran, so it
    // ends here, before the actors.
    limiter.stop();
    relays.stop(); // nothing asks any more; relays count as running actors
    drained =
        wait_for_ingest(sys, ingest_slot, std::chrono::milliseconds(cfg.http.drain_timeout_ms)) &&
        drained;
    caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
    sys.await_all_actors_done();
    graph->stop();
    // Detached actors' threads only end when the last handle is gone, and the actor system's
    // destructor waits for those threads.
    db_slot.set(nullptr);
    writer_slot.set(nullptr);
    inbound_writer_slot.set(nullptr);
    tenants_slot.set(nullptr);
    ingest_slot.set(nullptr);
    journal_slot.set(nullptr);
    root = nullptr;
    logger.info("stopped", {{"drained", drained}});
    if (root_failed)
      return 1;
  }
  return 0;
}

} // namespace parley
