#pragma once
// The raw-event journal: where a signed webhook becomes durable before its 200.
//
// Acknowledging a webhook needs nothing but its bytes on disk, so the journal does nothing else:
// one connection, one prepared statement per batch taking the whole batch as binary arrays (the
// events, and their ids into raw_webhook_events_pending: the work they still owe), ids reserved
// from the table's sequence in blocks, so a batch costs one round trip and its commit.
// Parsing, routing and storing the messages happen after the 200, in ingest, off this path.
//
// The HTTP edge sends entries with caf::anon_send from its I/O threads (no relay actor, no
// response promise: the entry carries its own completion), and the journal calls each entry's
// `done` on its thread once the batch holding it committed, or failed. Every committed batch then
// goes on to the sink (ingest) as one message.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>

#include "config/config.hpp"
#include "runtime/actor_slot.hpp"
#include "runtime/metrics.hpp"

namespace parley::persistence {

/// (journal_atom, journal_entry) -> nothing: make the entry durable, then call its `done`.
using journal_atom = caf::atom_constant<caf::atom("journal")>;
/// (journaled_atom, journaled_events): what one COMMIT made durable, sent to the sink.
using journaled_atom = caf::atom_constant<caf::atom("journaled")>;

/// One signed webhook body to store in raw_webhook_events.
struct journal_entry {
  std::string body;
  /// The channel of a per-channel webhook (a UUID), or "" for the platform endpoint.
  std::string channel_id;
  std::string request_id;
  /// Called exactly once on the journal's thread, and must not block: with the raw event's id
  /// once the COMMIT holding it succeeded (err empty), or with why it is not stored
  /// (errc::storage_unavailable: retry later; errc::internal: this entry cannot be stored).
  std::function<void(int64_t id, const caf::error& err)> done;
};

/// A raw event as committed, for processing.
struct journaled_event {
  int64_t id = 0;
  std::string body;
  std::string channel_id; ///< "" for the platform endpoint
};
using journaled_events = std::vector<journaled_event>;

struct journal_options {
  size_t max_rows = 2000; ///< rows per batch at most (more wait for the next one)
  size_t id_block = 4096; ///< ids reserved from raw_webhook_events_id_seq at a time
  std::chrono::milliseconds max_backoff{5000}; ///< cap of the reconnect backoff
  /// Receives (journaled_atom, journaled_events) after each commit; may be null or empty (then
  /// committed events are left to ingest's replay of unprocessed events).
  runtime::actor_slot* sink = nullptr;
};

/// journal_options from the db config section (batch size and reconnect backoff).
journal_options make_journal_options(const config::db_config& cfg, runtime::actor_slot* sink);

/// Spawns the journal, a detached actor owning one libpq connection to `cfg.url`.
/// Batching: the journal takes every entry already in its mailbox (up to max_rows) and writes
/// them in one statement, so batches grow with the load and an idle journal commits a lone entry at
/// once. Database unreachable: the batch's entries get storage_unavailable, and so does every
/// new entry until a reconnect (exponential backoff with jitter up to max_backoff) succeeds. A
/// batch whose outcome is unknown (connection lost before its result) is reported as
/// storage_unavailable: the webhook is retried by Meta and its messages deduplicate. A batch that
/// fails for its data is written again row by row, so a bad row fails alone (errc::internal).
/// On an exit message, entries already taken are written first.
/// Metrics: parley_journal_batch_rows, parley_journal_commit_seconds,
/// parley_journal_errors_total, parley_journal_up. `m` must outlive the actor.
caf::actor spawn_journal(caf::actor_system& sys, const config::db_config& cfg, journal_options opts,
                         metrics::registry& m);

/// The journal statement's four parameters for `rows` with `ids[i]` as row i's id: arrays in
/// PostgreSQL's binary format of bigint (ids), uuid (channel ids; NULL where empty or not a
/// UUID), text (request ids) and bytea (bodies, as they are). Pure, for tests.
std::array<std::string, 4> raw_event_arrays(const std::vector<journal_entry>& rows,
                                            const std::vector<int64_t>& ids);

} // namespace parley::persistence

// Entries carry closures; both types only travel inside one node.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::persistence::journal_entry)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::persistence::journaled_events)
