#pragma once
// The blocking reader/admin pool: n detached worker actors, each owning one PostgreSQL connection.
#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "config/config.hpp"
#include "persistence/messages.hpp"
#include "runtime/metrics.hpp"

namespace parley::persistence {

/// Spawns cfg.pool_size detached workers behind a round-robin caf::actor_pool. Each worker owns
/// one pqxx::connection: connected lazily on its first job, dropped when it breaks and reopened
/// on the next job (a job that finds a stale connection is retried once on a fresh one, unless the
/// loss hit its COMMIT). libpq connect_timeout and statement_timeout come from `cfg`.
///
/// Protocol:
///   (exec_atom, db_job) -> nlohmann::json, or an error with app_error's errc; SQL errors map to
///     conflict (unique violation), invalid_argument (data/constraint), timeout (statement
///     timeout), internal (bugs); connection failure -> errc::storage_unavailable
///     ("database unavailable: ..." with credentials scrubbed).
///   (health_atom) -> bool: SELECT 1 on the worker that receives it (false if unreachable).
/// Metrics: parley_db_job_seconds (histogram), parley_db_job_errors_total{code}.
/// Stop it with an exit message (the pool forwards it to its workers). `m` must outlive it.
caf::actor spawn_db_pool(caf::actor_system& sys, const config::db_config& cfg,
                         metrics::registry& m);

} // namespace parley::persistence
