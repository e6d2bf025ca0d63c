#include "persistence/db_pool.hpp"

#include <chrono>
#include <memory>

#include <caf/actor_pool.hpp>
#include <caf/stateful_actor.hpp>
#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include "domain/crypto.hpp"
#include "persistence/connection.hpp"
#include "persistence/db_errors.hpp"
#include "persistence/scope.hpp"
#include "runtime/logging.hpp"

namespace parley::persistence {

namespace {

struct worker_state {
  std::string url; ///< as configured; also used to scrub errors
  connection_options opts;
  std::unique_ptr<pqxx::connection> conn; ///< null until the first job, and after a failure
  metrics::histogram* job_seconds = nullptr;
  metrics::registry* registry = nullptr; ///< error counters are created on first use
  bool reported_down = false;            ///< warned about an outage not yet over (log once)
  log::logger lg{"persistence"};
  static inline const char* name = "db_worker";
};

using worker_actor = caf::stateful_actor<worker_state>;

caf::error fail(worker_state& st, const db_failure& f) {
  st.registry
      ->get_counter("parley_db_job_errors_total", "Database pool jobs that failed, by error code",
                    {{"code", std::string{api_code(f.code)}}})
      .inc();
  if (f.code == errc::internal)
    st.lg.error("database job failed", {{"error", f.message}});
  return make_error(f.code, f.message);
}

void reachable(worker_state& st) {
  if (st.reported_down) {
    st.reported_down = false;
    st.lg.info("database reachable again");
  }
}

caf::expected<nlohmann::json> run_job(worker_state& st, const db_job& job) {
  auto started = std::chrono::steady_clock::now();
  for (int attempt = 0;; ++attempt) {
    const bool reused = st.conn != nullptr;
    try {
      if (!st.conn)
        st.conn = connect(st.url, st.opts);
      pqxx::work tx{*st.conn};
      if (job.read_only)
        tx.exec0("SET TRANSACTION READ ONLY");
      // Row Level Security reads these; a job sees one tenant's rows or, in platform scope, all.
      if (!job.tenant_id.empty())
        tx.exec_params(set_tenant_scope, job.tenant_id);
      else
        tx.exec(set_platform_scope);
      auto out = job.fn(tx);
      tx.commit();
      reachable(st);
      st.job_seconds->observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      return out;
    } catch (...) {
      auto f = classify_current_exception(st.url);
      if (!f.connection_lost && st.conn && !st.conn->is_open()) {
        f.connection_lost = true;
        f.code = errc::storage_unavailable;
        f.message = "database unavailable: " + f.message;
      }
      if (f.connection_lost) {
        st.conn.reset();
        // A connection that died while idle (server restart, pg_terminate_backend) only shows
        // when used; nothing was committed, so one retry on a fresh connection is safe.
        if (reused && attempt == 0 && !f.in_doubt)
          continue;
        if (!st.reported_down) {
          // Once per outage and worker: a down database must not flood the log.
          st.reported_down = true;
          st.lg.warn("database unavailable", {{"error", f.message}});
        }
      }
      return fail(st, f);
    }
  }
}

bool check_health(worker_state& st) {
  for (int attempt = 0;; ++attempt) {
    const bool reused = st.conn != nullptr;
    try {
      if (!st.conn)
        st.conn = connect(st.url, st.opts);
      pqxx::nontransaction tx{*st.conn};
      tx.exec1("SELECT 1");
      reachable(st);
      return true;
    } catch (const std::exception&) {
      st.conn.reset();
      if (!(reused && attempt == 0)) // a stale connection gets one fresh try, like a job
        return false;
    }
  }
}

caf::behavior db_worker(worker_actor* self, std::string url, connection_options opts,
                        metrics::histogram* job_seconds, metrics::registry* registry) {
  self->state.url = std::move(url);
  self->state.opts = std::move(opts);
  self->state.job_seconds = job_seconds;
  self->state.registry = registry;
  // Runs on this actor's own (detached) thread as it ends (domain/crypto.hpp says why).
  self->attach_functor([] { crypto::release_thread_state(); });
  return {
      // Not caf::result<json>: its value constructor brace-initialises, json{j}, which nlohmann
      // turns into a one-element array. expected<json> passes the value through unchanged.
      [self](exec_atom, const db_job& job) -> caf::expected<nlohmann::json> {
        if (!job.fn)
          return make_error(errc::internal, "db_job without a function");
        return run_job(self->state, job);
      },
      [self](health_atom) -> bool { return check_health(self->state); },
  };
}

} // namespace

caf::actor spawn_db_pool(caf::actor_system& sys, const config::db_config& cfg,
                         metrics::registry& m) {
  auto opts = options_from(cfg, "parley-pool");
  auto* job_seconds =
      &m.get_histogram("parley_db_job_seconds", "Duration of database pool jobs, connect included");
  auto* registry = &m;
  auto* system = &sys;
  auto url = cfg.url;
  auto factory = [system, url, opts, job_seconds, registry] {
    return system->spawn<caf::detached>(db_worker, url, opts, job_seconds, registry);
  };
  auto n = static_cast<size_t>(std::max(1, cfg.pool_size));
  return caf::actor_pool::make(sys.dummy_execution_unit(), n, factory,
                               caf::actor_pool::round_robin());
}

} // namespace parley::persistence
