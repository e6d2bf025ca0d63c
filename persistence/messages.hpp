#pragma once
// Messages of the persistence actors (db_pool workers and group-commit writers). They carry
// closures and JSON, so they only ever travel inside one node.
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/transaction>

#include "runtime/atoms.hpp"

namespace parley::persistence {

/// (exec_atom, db_job) -> nlohmann::json: run a job on a pool worker.
using exec_atom = caf::atom_constant<caf::atom("exec")>;
/// (persist_atom, write_op) -> nlohmann::json: hand a row to a group-commit writer.
using persist_atom = caf::atom_constant<caf::atom("persist")>;
/// (health_atom) -> bool: can this worker reach the database right now?
using health_atom = caf::atom_constant<caf::atom("health")>;

/// A unit of blocking database work, run inside one transaction on a pool worker.
struct db_job {
  /// The tenant the job acts for: it runs after `set_config('parley.tenant_id', $1, true)`, so
  /// Row Level Security shows it that tenant's rows only. Empty = platform scope
  /// (`parley.scope = 'platform'`): the node's own cross-tenant work and admin operations.
  std::string tenant_id;
  /// Read-only jobs run in a READ ONLY transaction, so a stray write fails instead of landing.
  bool read_only = true;
  /// The work; throws parley::app_error for domain outcomes (not found, conflict, ...).
  std::function<nlohmann::json(pqxx::work&)> fn;
};

/// One row for a group-commit writer; `kind` names a registered batch handler.
struct write_op {
  std::string kind;
  nlohmann::json row;
};

/// Executes a whole batch of rows of one kind inside the open transaction; returns one result
/// per row (same order), e.g. the id assigned or {"duplicate":true}. Must be idempotent-friendly
/// (ON CONFLICT DO NOTHING style): after a lost COMMIT the caller may send the same row again.
/// Throwing marks the batch failed (the writer then isolates the offending rows).
using batch_fn =
    std::function<std::vector<nlohmann::json>(pqxx::work&, const std::vector<nlohmann::json>&)>;

} // namespace parley::persistence

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::persistence::db_job)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::persistence::write_op)

#ifndef PARLEY_JSON_MESSAGE_TYPE
#define PARLEY_JSON_MESSAGE_TYPE
// JSON documents only travel between actors of one node, so CAF may move them unserialised.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nlohmann::json)
#endif
