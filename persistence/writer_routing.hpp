#pragma once
// Which group-commit writer of a pool takes a write. A kind pinned to a writer always goes to it,
// so its rows meet in one writer's batches: each statement then runs once per batch over twice
// the rows (a statement costs a fixed part per execution), and rows that lock shared counters
// (the monthly usage of outbound accepts) never wait for another writer's commit. Other kinds go
// round robin.
#include <atomic>
#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include <caf/actor_pool.hpp>

namespace parley::persistence {

class writer_routing {
public:
  /// Writers [first, first + count) of the pool take a pinned kind; a tenant's rows of it always
  /// go to the same one of them (rows carrying "tenant_id"), so per-tenant locks never meet
  /// across writers.
  struct place {
    size_t first = 0;
    size_t count = 1;
  };
  /// `pinned`: write kind -> its writers (indexes taken modulo the pool's size).
  explicit writer_routing(std::map<std::string, place> pinned);
  writer_routing(const writer_routing& other);

  /// The writer for a write of `kind` (of `tenant_id`, may be empty) in a pool of `writers` (> 0).
  size_t pick(const std::string& kind, std::string_view tenant_id, size_t writers);
  /// The same, for a message that is not a write (round robin).
  size_t next(size_t writers);

  /// The writer for a message (a (persist_atom, write_op) or anything else).
  size_t next_for(const caf::type_erased_tuple& content, size_t writers);

  /// An actor_pool policy routing (persist_atom, write_op) messages by their kind.
  caf::actor_pool::policy policy() const;

private:
  std::map<std::string, place> pinned_;
  std::atomic<size_t> turn_{0};
};

} // namespace parley::persistence
