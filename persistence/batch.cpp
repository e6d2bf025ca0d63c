#include "persistence/batch.hpp"

#include <algorithm>
#include <chrono>
#include <span>
#include <stdexcept>

#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include "persistence/scope.hpp"

namespace parley::persistence {

namespace {

using index_list = std::vector<size_t>;

/// Rows of one kind, with their positions in the input.
struct group {
  std::string kind;
  index_list ids;
  std::vector<nlohmann::json> rows;
};

class committer {
public:
  committer(db_session& s, std::vector<write_op> ops, const std::map<std::string, batch_fn>& kinds,
            const batch_metrics& m, const std::set<std::string>& late_kinds)
      : s_(s)
      , kinds_(kinds)
      , m_(m) {
    out_.rows.resize(ops.size());
    done_.resize(ops.size(), false);
    // Rows move into their groups once; only the rare isolation path copies them again.
    std::map<std::string, size_t> slot;
    for (size_t i = 0; i < ops.size(); ++i) {
      auto [it, fresh] = slot.emplace(ops[i].kind, groups_.size());
      if (fresh)
        groups_.push_back(group{ops[i].kind, {}, {}});
      auto& g = groups_[it->second];
      g.ids.push_back(i);
      g.rows.push_back(std::move(ops[i].row));
    }
    if (!late_kinds.empty())
      std::stable_partition(groups_.begin(), groups_.end(),
                            [&](const group& g) { return late_kinds.count(g.kind) == 0; });
  }

  batch_outcome run() {
    std::optional<db_failure> first;
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool reused = s_.conn != nullptr;
      if (!ensure_connected())
        return finish();
      first = try_commit(groups_);
      if (!first)
        return finish();
      if (!first->connection_lost)
        break;
      s_.conn.reset();
      // An idle connection that died (server restart, pg_terminate_backend) only shows when
      // used; nothing was committed, so one retry on a fresh connection is safe.
      if (!(reused && attempt == 0 && !first->in_doubt)) {
        lose(*first);
        return finish();
      }
    }
    if (groups_.size() == 1) {
      isolate(groups_.front(), first);
    } else {
      for (const auto& g : groups_) {
        if (out_.unavailable)
          break;
        isolate(g, std::nullopt);
      }
    }
    return finish();
  }

private:
  bool ensure_connected() {
    if (s_.conn)
      return true;
    try {
      open_session(s_);
      return true;
    } catch (...) {
      lose(classify_current_exception(s_.url));
      return false;
    }
  }

  void lose(const db_failure& f) {
    s_.conn.reset();
    db_failure down = f;
    down.code = errc::storage_unavailable;
    out_.unavailable = down.message;
    unavailable_ = down;
  }

  /// One transaction over `groups`; on success their results are recorded.
  std::optional<db_failure> try_commit(std::span<const group> groups) {
    auto started = std::chrono::steady_clock::now();
    try {
      std::vector<std::vector<nlohmann::json>> results;
      pqxx::work tx{*s_.conn}; // in platform scope since open_session
      for (const auto& g : groups) {
        auto fn = kinds_.find(g.kind);
        if (fn == kinds_.end())
          throw std::logic_error("no batch handler for write kind '" + g.kind + "'");
        auto r = fn->second(tx, g.rows);
        if (r.size() != g.rows.size())
          throw std::logic_error("batch handler for '" + g.kind + "' returned " +
                                 std::to_string(r.size()) + " results for " +
                                 std::to_string(g.rows.size()) + " rows");
        results.push_back(std::move(r));
      }
      tx.commit();
      if (m_.commit_seconds)
        m_.commit_seconds->observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      for (size_t n = 0; n < groups.size(); ++n)
        for (size_t k = 0; k < groups[n].ids.size(); ++k) {
          auto i = groups[n].ids[k];
          out_.rows[i].ok = true;
          out_.rows[i].value = std::move(results[n][k]);
          done_[i] = true;
        }
      return std::nullopt;
    } catch (...) {
      if (m_.commit_errors)
        m_.commit_errors->inc();
      auto f = classify_current_exception(s_.url);
      if (!f.connection_lost && s_.conn && !s_.conn->is_open()) {
        f.connection_lost = true;
        f.message = "database unavailable: " + f.message;
      }
      return f;
    }
  }

  static group slice(const group& g, size_t from, size_t to) {
    group part{g.kind, {}, {}};
    part.ids.assign(g.ids.begin() + static_cast<std::ptrdiff_t>(from),
                    g.ids.begin() + static_cast<std::ptrdiff_t>(to));
    part.rows.assign(g.rows.begin() + static_cast<std::ptrdiff_t>(from),
                     g.rows.begin() + static_cast<std::ptrdiff_t>(to));
    return part;
  }

  /// `g` failed as a whole with `known`, or has not been tried alone yet.
  void isolate(const group& g, std::optional<db_failure> known) {
    auto f = known ? std::move(known) : try_commit(std::span<const group>(&g, 1));
    if (!f)
      return;
    if (f->connection_lost) {
      lose(*f);
      return;
    }
    if (g.ids.size() == 1 || !f->row_specific) {
      for (auto i : g.ids)
        fail(i, *f);
      return;
    }
    auto mid = g.ids.size() / 2;
    isolate(slice(g, 0, mid), std::nullopt);
    if (!out_.unavailable)
      isolate(slice(g, mid, g.ids.size()), std::nullopt);
  }

  void fail(size_t i, const db_failure& f) {
    out_.rows[i].ok = false;
    out_.rows[i].failure = f;
    done_[i] = true;
  }

  batch_outcome finish() {
    for (size_t i = 0; i < done_.size(); ++i)
      if (!done_[i])
        fail(i, unavailable_);
    for (auto& g : groups_)
      out_.spent_rows.push_back(std::move(g.rows));
    return std::move(out_);
  }

  db_session& s_;
  const std::map<std::string, batch_fn>& kinds_;
  const batch_metrics& m_;
  std::vector<group> groups_; ///< in order of first appearance
  batch_outcome out_;
  std::vector<bool> done_;
  db_failure unavailable_{errc::storage_unavailable, "database unavailable", true, false, false};
};

} // namespace

void open_session(db_session& s) {
  s.conn.reset();
  auto conn = connect(s.url, s.opts);
  try {
    pqxx::nontransaction{*conn}.exec(set_session_platform_scope);
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const std::exception& e) {
    throw pqxx::broken_connection{std::string{"setting the writer's scope failed: "} + e.what()};
  }
  s.conn = std::move(conn);
}

batch_outcome run_batch(db_session& session, std::vector<write_op> ops,
                        const std::map<std::string, batch_fn>& kinds, const batch_metrics& m,
                        const std::set<std::string>& late_kinds) {
  if (ops.empty())
    return {};
  return committer{session, std::move(ops), kinds, m, late_kinds}.run();
}

} // namespace parley::persistence
