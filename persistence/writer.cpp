#include "persistence/writer.hpp"

#include <algorithm>
#include <utility>

#include <caf/stateful_actor.hpp>

#include "domain/crypto.hpp"
#include "persistence/batch.hpp"
#include "persistence/reconnect_backoff.hpp"
#include "runtime/logging.hpp"

namespace parley::persistence {

namespace {

// Internal messages of the writer (sent only to itself).
using flush_atom = caf::atom_constant<caf::atom("wflush")>;
using reconnect_atom = caf::atom_constant<caf::atom("wreconnect")>;

struct writer_state {
  ~writer_state() {
    if (counted_up)
      up->dec();
  }

  db_session session;
  writer_options opts;
  std::vector<write_op> pending_ops; ///< rows waiting for the next flush...
  std::vector<caf::typed_response_promise<nlohmann::json>> pending_rps; ///< ...and their callers
  uint64_t generation = 0; ///< bumped by every flush; a flush timer from an older one is stale
  /// Rows queued up while the last batch was committing: once they are all taken in, the next
  /// batch commits at once instead of waiting max_delay for company it already has.
  bool backlog = false;
  caf::actor_clock::time_point last_flush; ///< when the last batch started (see min_interval)
  bool interval_timer = false;             ///< a flush is scheduled for the end of min_interval
  bool down = false;       ///< database unreachable: refuse new ops until a reconnect succeeds
  std::string down_reason; ///< what callers are told while down
  reconnect_backoff backoff;
  bool counted_up = false; ///< this writer currently counts in parley_db_writer_up
  metrics::histogram* batch_rows = nullptr;
  metrics::gauge* up = nullptr;
  batch_metrics commit_metrics;
  log::logger lg{"persistence"};
  static inline const char* name = "db_writer";
};

using writer_actor = caf::stateful_actor<writer_state>;

void mark_up(writer_state& st) {
  if (!st.counted_up) {
    st.counted_up = true;
    st.up->inc();
  }
}

void schedule_reconnect(writer_actor* self) {
  auto& st = self->state;
  self->delayed_send(self, st.backoff.next(), reconnect_atom::value);
}

void go_down(writer_actor* self, const std::string& reason) {
  auto& st = self->state;
  st.down = true;
  st.down_reason = reason;
  st.backoff.reset();
  if (st.counted_up) {
    st.counted_up = false;
    st.up->dec();
  }
  // Logged on the transition only: refusals while down are counted by callers, not logged here.
  st.lg.warn("database unreachable; refusing writes until it is back", {{"error", reason}});
  schedule_reconnect(self);
}

void try_reconnect(writer_actor* self) {
  auto& st = self->state;
  if (!st.down)
    return;
  try {
    open_session(st.session);
    st.down = false;
    st.backoff.reset();
    mark_up(st);
    st.lg.info("database reachable again; accepting writes");
  } catch (const std::exception& e) {
    st.down_reason = std::string{"database unavailable: "} + e.what(); // already scrubbed
    st.backoff.failed();
    schedule_reconnect(self);
  }
}

void flush(writer_actor* self) {
  auto& st = self->state;
  ++st.generation;
  st.interval_timer = false;
  if (st.pending_ops.empty())
    return;
  st.last_flush = self->clock().now();
  auto ops = std::exchange(st.pending_ops, {});
  auto rps = std::exchange(st.pending_rps, {});
  size_t answered = 0;
  try {
    st.batch_rows->observe(static_cast<double>(ops.size()));
    auto out =
        run_batch(st.session, std::move(ops), st.opts.kinds, st.commit_metrics, st.opts.late_kinds);
    for (; answered < rps.size(); ++answered) {
      auto& r = out.rows[answered];
      if (r.ok)
        rps[answered].deliver(std::move(r.value));
      else
        rps[answered].deliver(make_error(r.failure.code, r.failure.message));
    }
    st.backlog = !self->mailbox().empty();
    if (out.unavailable)
      go_down(self, *out.unavailable);
    else
      mark_up(st);
  } catch (const std::exception& e) {
    // Callers wait for these answers without a timeout of their own (writer.hpp):
    // whatever broke (an allocation, say), every row taken gets one before the writer ends, as
    // an error like any failed write's (whether the rows committed is unknown, as after a lost
    // connection).
    for (; answered < rps.size(); ++answered)
      rps[answered].deliver(make_error(errc::internal, std::string{"write failed: "} + e.what()));
    throw;
  }
}

caf::behavior writer(writer_actor* self, std::string url, connection_options conn_opts,
                     writer_options opts, metrics::histogram* batch_rows, metrics::gauge* up,
                     batch_metrics bm) {
  auto& st = self->state;
  st.session.url = std::move(url);
  st.session.opts = std::move(conn_opts);
  st.opts = std::move(opts);
  st.opts.max_rows = std::max<size_t>(1, st.opts.max_rows);
  st.backoff = reconnect_backoff{st.opts.max_backoff};
  st.batch_rows = batch_rows;
  st.up = up;
  st.commit_metrics = bm;
  // Runs on this actor's own (detached) thread as it ends (domain/crypto.hpp says why).
  self->attach_functor([] { crypto::release_thread_state(); });
  // Drain on shutdown: rows already accepted are committed (or failed) before the actor ends.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    flush(self);
    self->quit(msg.reason);
  });
  return {
      [self](persist_atom, write_op& op) -> caf::result<nlohmann::json> {
        auto& st = self->state;
        if (st.down)
          return make_error(errc::storage_unavailable, st.down_reason);
        if (st.opts.kinds.count(op.kind) == 0)
          return make_error(errc::internal, "unknown write kind '" + op.kind + "'");
        auto rp = self->make_response_promise<nlohmann::json>();
        st.pending_ops.push_back(std::move(op));
        st.pending_rps.push_back(rp);
        if (st.pending_ops.size() >= st.opts.max_rows) {
          flush(self);
        } else if (st.backlog && self->mailbox().empty()) {
          auto since = self->clock().now() - st.last_flush;
          if (since >= st.opts.min_interval)
            flush(self);
          else if (!st.interval_timer) {
            st.interval_timer = true;
            self->delayed_send(self, st.opts.min_interval - since, flush_atom::value,
                               st.generation);
          }
        } else if (st.pending_ops.size() == 1) {
          self->delayed_send(self, std::max(st.opts.max_delay, st.opts.min_interval),
                             flush_atom::value, st.generation);
        }
        return rp;
      },
      [self](flush_atom, uint64_t generation) {
        if (generation == self->state.generation)
          flush(self);
      },
      [self](reconnect_atom) { try_reconnect(self); },
  };
}

} // namespace

writer_options make_writer_options(const config::db_config& cfg,
                                   std::map<std::string, batch_fn> kinds) {
  writer_options o;
  o.max_rows = static_cast<size_t>(std::max(1, cfg.batch_max_rows));
  o.max_delay = std::chrono::milliseconds{std::max(0, cfg.batch_max_delay_ms)};
  o.max_backoff = std::chrono::milliseconds{std::max(1, cfg.reconnect_max_backoff_ms)};
  o.kinds = std::move(kinds);
  return o;
}

caf::actor spawn_writer(caf::actor_system& sys, const config::db_config& cfg, writer_options opts,
                        metrics::registry& m) {
  auto* batch_rows = &m.get_histogram("parley_db_batch_rows", "Rows per group-commit batch", {},
                                      metrics::size_buckets());
  auto* up = &m.get_gauge("parley_db_writer_up", "Group-commit writers connected to the database");
  batch_metrics bm;
  bm.commit_seconds = &m.get_histogram("parley_db_commit_seconds",
                                       "Duration of group-commit transactions, BEGIN to COMMIT");
  bm.commit_errors = &m.get_counter("parley_db_commit_errors_total",
                                    "Group-commit transactions that failed (data or connection)");
  auto conn_opts = options_from(cfg, "parley-writer");
  conn_opts.index_plans_only = true;
  return sys.spawn<caf::detached>(writer, cfg.url, std::move(conn_opts), std::move(opts),
                                  batch_rows, up, bm);
}

} // namespace parley::persistence
