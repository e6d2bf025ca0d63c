#pragma once
// The transactional core of group commit, free of actor concerns so it reads (and tests) as plain
// code: run a batch of rows in one transaction, and when the data breaks it, find the bad rows.
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "persistence/connection.hpp"
#include "persistence/db_errors.hpp"
#include "persistence/messages.hpp"
#include "runtime/metrics.hpp"

namespace parley::persistence {

/// A connection owned by one actor: opened on demand, dropped when it breaks.
struct db_session {
  std::string url;
  connection_options opts;
  std::unique_ptr<pqxx::connection> conn;
};

/// (Re)opens `s.conn` for batches: in platform scope for the whole session (batches mix tenants).
/// Throws like connect().
void open_session(db_session& s);

/// Per-row result of a batch: a committed value or the reason this row was not committed.
struct row_result {
  bool ok = false;
  nlohmann::json value;
  db_failure failure;
};

struct batch_outcome {
  std::vector<row_result> rows;           ///< same order as the input
  std::optional<std::string> unavailable; ///< set when the database became unreachable
  /// The batch's input rows, freed by whoever holds the outcome: after the answers are delivered
  /// (freeing a batch's JSON was ~20 % of the writer's CPU, on the callers' critical path).
  std::vector<std::vector<nlohmann::json>> spent_rows;
};

/// Metrics the committer updates (any may be null).
struct batch_metrics {
  metrics::histogram* commit_seconds = nullptr; ///< BEGIN..COMMIT of each successful transaction
  metrics::counter* commit_errors = nullptr;    ///< transactions that failed
};

/// Runs `ops` in one transaction: every kind's batch_fn, then COMMIT. A row is reported ok only
/// if a COMMIT containing it succeeded. When the transaction fails because of the data, each
/// kind is retried alone and a failing group is bisected until every bad row fails in a
/// transaction of its own (O(bad * log n) transactions instead of one per row); the good rows
/// commit. A stale connection found at the start is replaced once; if the database is
/// unreachable, every row not yet committed fails with storage_unavailable and
/// `unavailable` says why.
/// Kinds in `late_kinds` run after all others: they lock rows that concurrent writers share
/// (the monthly usage counters), and locks are held until COMMIT.
batch_outcome run_batch(db_session& session, std::vector<write_op> ops,
                        const std::map<std::string, batch_fn>& kinds, const batch_metrics& m,
                        const std::set<std::string>& late_kinds = {});

} // namespace parley::persistence
