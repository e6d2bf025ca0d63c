#pragma once
// The live actor tree behind GET /v1/admin/actors. Actors register themselves when they start and
// are removed automatically when they terminate; supervisors record restarts against the child's
// logical path so a count survives the restarted incarnation.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

namespace parley::runtime {

struct actor_info {
  std::string kind;   ///< "supervisor", "tenant", "db_writer", ...
  std::string id;     ///< logical id within its kind (tenant id, "root", ...)
  std::string parent; ///< logical path of the parent ("" for roots)
  std::string path() const {
    return parent.empty() ? kind + ":" + id : parent + "/" + kind + ":" + id;
  }
};

class actor_tree {
public:
  struct entry {
    caf::actor_addr handle; ///< weak: the tree never keeps an actor alive
    actor_info info;
    std::chrono::steady_clock::time_point started;
    uint64_t restarts = 0;
  };

  /// Registers `self` and removes it again when it terminates.
  void enroll(caf::local_actor* self, actor_info info);
  /// Registers an actor from outside (one spawned by a module that does not know the tree).
  void enroll(const caf::actor& handle, actor_info info);
  /// Counts one restart of the child at `path` (kept across incarnations).
  void note_restart(const std::string& path);
  uint64_t restarts(const std::string& path) const;
  std::vector<entry> snapshot() const;
  size_t size() const;
  /// Actors alive by kind (for the parley_actors_alive gauge).
  std::map<std::string, size_t> count_by_kind() const;

private:
  void remove(caf::actor_id id);

  mutable std::mutex mtx_;
  std::map<caf::actor_id, entry> live_;
  std::map<std::string, uint64_t> restarts_;
};

} // namespace parley::runtime
