#pragma once
// OTP-style supervision on top of CAF links (CAF 0.17 has no supervisors of its own).
//
// A supervisor links to each child and traps exit messages. When a child ends abnormally it is
// restarted according to its restart policy and the supervisor's strategy; more than
// `max_restarts` restarts within `window` make the supervisor give up and exit with an error,
// which its own parent sees as a crashed child (escalation). Because children are linked, they
// end with their supervisor.
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include "runtime/actor_tree.hpp"

namespace parley::runtime {

enum class restart_policy {
  permanent, ///< always restarted, even after a normal exit
  transient, ///< restarted only after an abnormal exit (passivation ends it for good)
  temporary, ///< never restarted
};

enum class strategy {
  one_for_one, ///< restart only the child that failed
  one_for_all, ///< restart every child when one fails (children that depend on each other)
};

struct child_spec {
  std::string id;   ///< unique within its supervisor
  std::string kind; ///< for the actor tree and metrics
  restart_policy restart = restart_policy::permanent;
  /// Spawns the child (called on start and on every restart). `parent_path` is the supervisor's
  /// path in the actor tree, for the child to enroll under.
  std::function<caf::actor(caf::actor_system& sys, const std::string& parent_path)> start;
};

struct supervisor_options {
  std::string id;          ///< the supervisor's own id in the actor tree
  std::string parent_path; ///< its parent's path ("" for the root)
  strategy strat = strategy::one_for_one;
  size_t max_restarts = 5;
  caf::timespan window = std::chrono::seconds(10);
  actor_tree* tree = nullptr; ///< optional: enroll supervisor and count restarts
};

class actor_slot;

/// A permanent child whose every incarnation is published in `slot` (see actor_slot.hpp), so
/// callers outside the actor world always reach the live one. `spawn` gets the parent's path.
child_spec published_child(std::string id, std::string kind, actor_slot* slot,
                           std::function<caf::actor(caf::actor_system&, const std::string&)> spawn);

/// Spawns a supervisor with initial `children` (started in order).
///
/// Protocol:
///   (start_child_atom, child_spec) -> caf::actor   starts a child, or returns the live one with
///   that id (find_child_atom, std::string id) -> caf::actor  or errc::not_found (stop_child_atom,
///   std::string id) -> bool        stops a child without restarting it (status_atom) ->
///   nlohmann::json
caf::actor spawn_supervisor(caf::actor_system& sys, supervisor_options opts,
                            std::vector<child_spec> children);

} // namespace parley::runtime

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::runtime::child_spec)
