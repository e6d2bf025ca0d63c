#pragma once
// Atoms shared by runtime-level protocols (supervision, status). Product protocols live in
// actors/interfaces.hpp; persistence's in persistence/messages.hpp.
#include <utility>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <nlohmann/json.hpp>

namespace parley {

using status_atom = caf::atom_constant<caf::atom("status")>; ///< -> nlohmann::json
using start_child_atom = caf::atom_constant<caf::atom("startchild")>;
using find_child_atom = caf::atom_constant<caf::atom("findchild")>;
using stop_child_atom = caf::atom_constant<caf::atom("stopchild")>;
using get_atom = caf::atom_constant<caf::atom("get")>;
using put_atom = caf::atom_constant<caf::atom("put")>;
using reload_atom = caf::atom_constant<caf::atom("reload")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;

} // namespace parley

#ifndef PARLEY_JSON_MESSAGE_TYPE
#define PARLEY_JSON_MESSAGE_TYPE
// JSON documents only travel between actors of one node (the cluster protocol uses typed,
// inspectable structs), so CAF may move them without a serializer.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nlohmann::json)
#endif
