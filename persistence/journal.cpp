#include "persistence/journal.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <utility>

#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <libpq-fe.h>
#include <nlohmann/json.hpp>

#include "domain/uuid.hpp"
#include "persistence/connection.hpp"
#include "runtime/atoms.hpp"
#include "runtime/errors.hpp"
#include "runtime/logging.hpp"

namespace parley::persistence {

namespace {

// Internal messages of the journal (sent only to itself).
using reconnect_atom = caf::atom_constant<caf::atom("jreconnect")>;

constexpr std::chrono::milliseconds initial_backoff{50};

// Two COPYs in one simple query: PostgreSQL runs them as one implicit transaction, committed
// when the second ends (an event and its pending mark, or neither), in three round trips.
constexpr const char* copy_statement =
    "COPY raw_webhook_events (id, channel_id, request_id, body) FROM STDIN (FORMAT binary); "
    "COPY raw_webhook_events_pending (id) FROM STDIN (FORMAT binary)";

struct conn_closer {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct result_clearer {
  void operator()(PGresult* r) const { PQclear(r); }
};
using pg_conn = std::unique_ptr<PGconn, conn_closer>;
using pg_result = std::unique_ptr<PGresult, result_clearer>;

void put_u16(std::string& out, uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

void put_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out += static_cast<char>((v >> shift) & 0xff);
}

void put_u64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out += static_cast<char>((v >> shift) & 0xff);
}

void put_field(std::string& out, std::string_view bytes) {
  put_u32(out, static_cast<uint32_t>(bytes.size()));
  out.append(bytes.data(), bytes.size());
}

/// Why a statement failed, and whether retrying it later (rather than row by row) is the answer.
struct pg_failure {
  std::string message;
  bool data = false; ///< SQLSTATE class 22 (data exception) or 23 (integrity constraint)
  /// Failed before any row was sent: nothing of this batch can have been committed.
  bool before_data = false;
};

pg_failure failure_of(PGconn* conn, const PGresult* res) {
  pg_failure f;
  const char* msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
  f.message = msg ? msg : "unknown error";
  while (!f.message.empty() && (f.message.back() == '\n' || f.message.back() == ' '))
    f.message.pop_back();
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  f.data = state && (std::strncmp(state, "22", 2) == 0 || std::strncmp(state, "23", 2) == 0);
  return f;
}

struct journal_state {
  ~journal_state() {
    if (counted_up)
      up->dec();
  }

  std::string url;
  connection_options conn_opts;
  journal_options opts;
  pg_conn conn;
  std::vector<journal_entry> pending; ///< taken from the mailbox, waiting for the next COPY
  std::vector<int64_t> ids;           ///< reserved from the sequence, not used yet...
  size_t next_id = 0;                 ///< ...from this index on
  bool down = false;
  std::string down_reason;
  std::chrono::milliseconds backoff{initial_backoff};
  std::minstd_rand jitter{std::random_device{}()};
  bool counted_up = false;
  metrics::histogram* batch_rows = nullptr;
  metrics::histogram* commit_seconds = nullptr;
  metrics::counter* errors = nullptr;
  metrics::gauge* up = nullptr;
  log::logger lg{"journal"};
  static inline const char* name = "journal";
};

using journal_actor = caf::stateful_actor<journal_state>;

void answer(journal_state& st, journal_entry& e, int64_t id, const caf::error& err) {
  try {
    e.done(id, err);
  } catch (const std::exception& ex) {
    st.lg.error("journal completion threw", {{"error", ex.what()}});
  }
}

void set_up(journal_state& st, bool is_up) {
  if (is_up == st.counted_up)
    return;
  st.counted_up = is_up;
  if (is_up)
    st.up->inc();
  else
    st.up->dec();
}

/// Opens the connection; throws std::runtime_error with a scrubbed message.
void open(journal_state& st) {
  st.conn.reset();
  pg_conn c{PQconnectdb(connection_string(st.url, st.conn_opts).c_str())};
  if (!c || PQstatus(c.get()) != CONNECTION_OK) {
    std::string msg = c ? PQerrorMessage(c.get()) : "out of memory";
    while (!msg.empty() && std::isspace(static_cast<unsigned char>(msg.back())))
      msg.pop_back();
    throw std::runtime_error("database unavailable: " + scrub(msg, st.url));
  }
  st.conn = std::move(c);
}

void schedule_reconnect(journal_actor* self) {
  auto& st = self->state;
  auto spread = std::uniform_int_distribution<long>{0, st.backoff.count() / 4}(st.jitter);
  self->delayed_send(self, st.backoff + std::chrono::milliseconds{spread}, reconnect_atom::value);
}

void go_down(journal_actor* self, const std::string& reason) {
  auto& st = self->state;
  st.conn.reset();
  st.down = true;
  st.down_reason = reason;
  st.backoff = std::min(initial_backoff, st.opts.max_backoff);
  set_up(st, false);
  st.lg.warn("database unreachable; refusing webhooks until it is back", {{"error", reason}});
  schedule_reconnect(self);
}

void try_reconnect(journal_actor* self) {
  auto& st = self->state;
  if (!st.down)
    return;
  try {
    open(st);
    st.down = false;
    st.backoff = initial_backoff;
    set_up(st, true);
    st.lg.info("database reachable again; accepting webhooks");
  } catch (const std::exception& e) {
    st.down_reason = e.what();
    st.backoff = std::min(st.backoff * 2, st.opts.max_backoff);
    schedule_reconnect(self);
  }
}

/// Makes sure `n` reserved ids are left. Throws pg_failure.
void reserve_ids(journal_state& st, size_t n) {
  if (st.ids.size() - st.next_id >= n)
    return;
  auto want = std::max(n, st.opts.id_block);
  auto sql = "SELECT nextval('raw_webhook_events_id_seq') FROM generate_series(1, " +
             std::to_string(want) + ")";
  pg_result res{PQexec(st.conn.get(), sql.c_str())};
  if (!res || PQresultStatus(res.get()) != PGRES_TUPLES_OK) {
    auto f = failure_of(st.conn.get(), res.get());
    f.before_data = true;
    throw f;
  }
  std::vector<int64_t> fresh(st.ids.begin() + static_cast<std::ptrdiff_t>(st.next_id),
                             st.ids.end());
  auto rows = PQntuples(res.get());
  fresh.reserve(fresh.size() + static_cast<size_t>(rows));
  for (int i = 0; i < rows; ++i)
    fresh.push_back(std::strtoll(PQgetvalue(res.get(), i, 0), nullptr, 10));
  st.ids = std::move(fresh);
  st.next_id = 0;
}

/// Sends one COPY's data once the server asks for it (`res` is its CopyIn answer); returns the
/// next result. Throws pg_failure.
pg_result put_copy(PGconn* c, pg_result res, const std::string& data, bool first) {
  if (!res || PQresultStatus(res.get()) != PGRES_COPY_IN) {
    auto f = failure_of(c, res.get());
    f.before_data = first;
    while (pg_result more{PQgetResult(c)}) {
    }
    throw f;
  }
  if (PQputCopyData(c, data.data(), static_cast<int>(data.size())) != 1 ||
      PQputCopyEnd(c, nullptr) != 1)
    throw failure_of(c, nullptr);
  pg_result done{PQgetResult(c)};
  if (!done || PQresultStatus(done.get()) != PGRES_COMMAND_OK) {
    auto f = failure_of(c, done.get());
    while (pg_result more{PQgetResult(c)}) {
    }
    throw f;
  }
  return pg_result{PQgetResult(c)};
}

/// The rows with `ids` and their pending marks, committed together. Throws pg_failure.
void copy_rows(journal_state& st, const std::vector<journal_entry>& rows,
               const std::vector<int64_t>& ids) {
  PGconn* c = st.conn.get();
  auto next =
      put_copy(c, pg_result{PQexec(c, copy_statement)}, raw_events_copy_data(rows, ids), true);
  auto last = put_copy(c, std::move(next), pending_copy_data(ids), false);
  if (last) { // anything after the second COPY's CommandComplete is unexpected
    auto f = failure_of(c, last.get());
    while (pg_result more{PQgetResult(c)}) {
    }
    throw f;
  }
}

bool connection_lost(const journal_state& st) {
  return !st.conn || PQstatus(st.conn.get()) != CONNECTION_OK;
}

/// Writes the pending entries; answers each; hands what committed to the sink.
void flush(journal_actor* self) {
  auto& st = self->state;
  if (st.pending.empty())
    return;
  auto rows = std::exchange(st.pending, {});
  auto unavailable = [&](const std::string& why) {
    auto err = make_error(errc::storage_unavailable, why);
    for (auto& e : rows)
      answer(st, e, 0, err);
  };
  if (st.down || !st.conn) {
    unavailable(st.down_reason.empty() ? "database unavailable" : st.down_reason);
    return;
  }
  st.batch_rows->observe(static_cast<double>(rows.size()));
  std::vector<int64_t> ids;
  std::vector<bool> stored(rows.size(), false);
  auto started = std::chrono::steady_clock::now();
  // The batch on the current connection; a connection found dead before any row was sent (a
  // restarted server, an idle backend terminated) is replaced once, transparently.
  auto write_batch = [&] {
    for (bool retried = false;; retried = true) {
      try {
        reserve_ids(st, rows.size());
        if (ids.empty()) {
          ids.assign(st.ids.begin() + static_cast<std::ptrdiff_t>(st.next_id),
                     st.ids.begin() + static_cast<std::ptrdiff_t>(st.next_id + rows.size()));
          st.next_id += rows.size();
        }
        copy_rows(st, rows, ids);
        return;
      } catch (const pg_failure& f) {
        if (retried || !f.before_data || !connection_lost(st))
          throw;
        try {
          open(st);
        } catch (const std::exception&) {
          throw f;
        }
      }
    }
  };
  try {
    write_batch();
    std::fill(stored.begin(), stored.end(), true);
    st.commit_seconds->observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  } catch (const pg_failure& f) {
    st.errors->inc();
    if (connection_lost(st) || !f.data || ids.size() != rows.size()) {
      // Whether the COPY committed is unknown when the connection went: not acknowledged, so
      // Meta sends it again and its messages deduplicate.
      std::string why = "database unavailable: " + scrub(f.message, st.url);
      if (connection_lost(st))
        go_down(self, why);
      else
        st.lg.warn("raw events not stored", {{"error", why}, {"rows", rows.size()}});
      unavailable(why);
      return;
    }
    // The data broke the COPY: each row alone, so only a bad one fails.
    for (size_t i = 0; i < rows.size(); ++i) {
      try {
        copy_rows(st, {rows[i]}, {ids[i]});
        stored[i] = true;
      } catch (const pg_failure& one) {
        if (connection_lost(st)) {
          go_down(self, "database unavailable: " + scrub(one.message, st.url));
          break;
        }
        st.lg.error("raw event cannot be stored",
                    {{"request_id", rows[i].request_id}, {"error", one.message}});
      }
    }
  } catch (const std::exception& e) {
    // Anything else (an allocation, say): every entry taken gets its answer before the journal
    // ends and is restarted by its supervisor.
    st.errors->inc();
    auto err = make_error(errc::storage_unavailable, std::string{"journal failed: "} + e.what());
    for (auto& r : rows)
      answer(st, r, 0, err);
    throw;
  }
  // The batch goes on to processing before the answers go out, so an event acknowledged is
  // always in ingest's mailbox already (a clean stop waits for ingest to finish what it holds).
  journaled_events committed;
  committed.reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i)
    if (stored[i])
      committed.push_back({ids[i], std::move(rows[i].body), rows[i].channel_id});
  if (!committed.empty() && st.opts.sink)
    if (auto sink = st.opts.sink->get())
      caf::anon_send(sink, journaled_atom::value, std::move(committed));
  auto refused = make_error(errc::internal, "the webhook could not be stored");
  auto lost = make_error(errc::storage_unavailable, "database unavailable");
  for (size_t i = 0; i < rows.size(); ++i) {
    if (stored[i])
      answer(st, rows[i], ids[i], caf::error{});
    else
      answer(st, rows[i], 0, st.down ? lost : refused);
  }
}

caf::behavior journal(journal_actor* self, std::string url, connection_options conn_opts,
                      journal_options opts, metrics::histogram* batch_rows,
                      metrics::histogram* commit_seconds, metrics::counter* errors,
                      metrics::gauge* up) {
  auto& st = self->state;
  st.url = std::move(url);
  st.conn_opts = std::move(conn_opts);
  st.opts = std::move(opts);
  st.opts.max_rows = std::max<size_t>(1, st.opts.max_rows);
  st.opts.id_block = std::max<size_t>(1, st.opts.id_block);
  st.batch_rows = batch_rows;
  st.commit_seconds = commit_seconds;
  st.errors = errors;
  st.up = up;
  try {
    open(st);
    set_up(st, true);
  } catch (const std::exception& e) {
    go_down(self, e.what());
  }
  // Entries already taken are written before the actor ends.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    flush(self);
    self->quit(msg.reason);
  });
  return {
      [self](journal_atom, journal_entry& e) {
        auto& st = self->state;
        if (st.down) {
          answer(st, e, 0, make_error(errc::storage_unavailable, st.down_reason));
          return;
        }
        if (!e.channel_id.empty() && !domain::uuid::parse(e.channel_id)) {
          answer(st, e, 0, make_error(errc::invalid_argument, "channel id is not a UUID"));
          return;
        }
        st.pending.push_back(std::move(e));
        // Everything that arrived meanwhile shares the COPY: batches grow with the load, and a
        // lone webhook is committed at once.
        if (st.pending.size() >= st.opts.max_rows || self->mailbox().empty())
          flush(self);
      },
      [self](reconnect_atom) { try_reconnect(self); },
      [self](status_atom) {
        // For GET /v1/admin/actors; the mailbox is read by its owner, as CAF requires.
        auto& st = self->state;
        return nlohmann::json{{"state", st.down ? "database_unavailable" : "running"},
                              {"mailbox", self->mailbox().size()},
                              {"ids_reserved", st.ids.size() - st.next_id}};
      },
  };
}

} // namespace

std::string raw_events_copy_data(const std::vector<journal_entry>& rows,
                                 const std::vector<int64_t>& ids) {
  size_t size = 21;
  for (const auto& r : rows)
    size += 2 + 4 + 8 + 4 + 16 + 4 + r.request_id.size() + 4 + r.body.size();
  std::string out;
  out.reserve(size);
  out.append("PGCOPY\n\377\r\n\0", 11);
  put_u32(out, 0); // flags
  put_u32(out, 0); // header extension length
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    put_u16(out, 4);
    put_u32(out, 8);
    put_u64(out, static_cast<uint64_t>(ids.at(i)));
    auto channel = r.channel_id.empty() ? std::nullopt : domain::uuid::parse(r.channel_id);
    if (channel) {
      const auto& b = channel->bytes();
      put_field(out, std::string_view{reinterpret_cast<const char*>(b.data()), b.size()});
    } else {
      put_u32(out, 0xffffffffu); // NULL
    }
    put_field(out, r.request_id);
    put_field(out, r.body);
  }
  put_u16(out, 0xffff);
  return out;
}

std::string pending_copy_data(const std::vector<int64_t>& ids) {
  std::string out;
  out.reserve(21 + ids.size() * 14);
  out.append("PGCOPY\n\377\r\n\0", 11);
  put_u32(out, 0);
  put_u32(out, 0);
  for (auto id : ids) {
    put_u16(out, 1);
    put_u32(out, 8);
    put_u64(out, static_cast<uint64_t>(id));
  }
  put_u16(out, 0xffff);
  return out;
}

journal_options make_journal_options(const config::db_config& cfg, runtime::actor_slot* sink) {
  journal_options o;
  o.max_rows = static_cast<size_t>(std::max(1, cfg.batch_max_rows));
  o.max_backoff = std::chrono::milliseconds{std::max(1, cfg.reconnect_max_backoff_ms)};
  o.sink = sink;
  return o;
}

caf::actor spawn_journal(caf::actor_system& sys, const config::db_config& cfg, journal_options opts,
                         metrics::registry& m) {
  auto* batch_rows =
      &m.get_histogram("parley_journal_batch_rows", "Raw webhook events per journal COPY", {},
                       metrics::size_buckets());
  auto* commit_seconds = &m.get_histogram("parley_journal_commit_seconds",
                                          "Duration of a journal COPY, its commit included");
  auto* errors = &m.get_counter("parley_journal_errors_total",
                                "Journal COPYs that failed (data or connection)");
  auto* up = &m.get_gauge("parley_journal_up", "Raw-event journals connected to the database");
  auto conn_opts = options_from(cfg, "parley-journal");
  return sys.spawn<caf::detached>(journal, cfg.url, std::move(conn_opts), std::move(opts),
                                  batch_rows, commit_seconds, errors, up);
}

} // namespace parley::persistence
