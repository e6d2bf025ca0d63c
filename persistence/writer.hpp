#pragma once
// The group-commit writer: many small writes, few transactions.
#include <chrono>
#include <cstddef>
#include <map>
#include <set>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "config/config.hpp"
#include "persistence/messages.hpp"
#include "runtime/metrics.hpp"

namespace parley::persistence {

struct writer_options {
  size_t max_rows = 1000;                 ///< flush when this many rows wait...
  std::chrono::milliseconds max_delay{2}; ///< ...or when the oldest has waited this long
  /// A batch starts at least this long after the previous one started (0: as soon as the
  /// writer has taken in what queued during the last commit). For writes nobody waits on (the
  /// inbound writer): under moderate load a batch then holds what arrived in this interval
  /// instead of what arrived during one short commit, and PostgreSQL's cost per row falls.
  std::chrono::milliseconds min_interval{0};
  std::chrono::milliseconds max_backoff{5000}; ///< cap of the reconnect backoff
  std::map<std::string, batch_fn> kinds;       ///< write_op::kind -> handler
  std::set<std::string> late_kinds;            ///< run last in each batch (see run_batch)
};

/// writer_options with the batching and backoff settings of the db config section.
writer_options make_writer_options(const config::db_config& cfg,
                                   std::map<std::string, batch_fn> kinds);

/// Spawns a group-commit writer, a detached actor owning one connection.
///
/// Protocol: (persist_atom, write_op) -> nlohmann::json (the kind's result for that row),
/// answered only after the COMMIT containing the row succeeded. Rows accumulate until max_rows
/// or max_delay, then one transaction runs every kind's batch_fn and commits; then all promises
/// are delivered. A batch broken by its data is split until each bad row fails alone
/// (invalid_argument / conflict / the app_error's code) while the rest commit.
/// Database unreachable: every waiting op gets errc::storage_unavailable; until a reconnect
/// (exponential backoff from 50 ms up to max_backoff) succeeds, new ops are refused at once.
/// An unknown kind is refused with errc::internal. On an exit message, waiting rows are flushed
/// first. Nothing is ever reported committed that was not; a COMMIT whose outcome is unknown is
/// reported as storage_unavailable (batch_fns are idempotent, so a retry is safe).
/// Every op gets exactly one answer, also when the writer itself fails (errc::internal for the
/// rows it had taken) or ends (CAF answers the ops still queued): actors of the node wait for it
/// without a request timeout, which in CAF 0.17 costs two clock-thread events per row
/// (runtime/deadline_book.hpp). What bounds a client's wait is the HTTP server's deadline.
///
/// Metrics: parley_db_batch_rows (histogram, size_buckets), parley_db_commit_seconds
/// (histogram), parley_db_commit_errors_total, parley_db_writer_up (gauge, writers connected).
/// `m` must outlive the actor.
caf::actor spawn_writer(caf::actor_system& sys, const config::db_config& cfg, writer_options opts,
                        metrics::registry& m);

} // namespace parley::persistence
