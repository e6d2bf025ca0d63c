#pragma once
// The one place that wires a Parley node together (userver-style component list): configuration,
// logging, migrations, the actor system and its supervision tree, the HTTP edge; and takes it
// apart again in reverse order on SIGTERM.
#include "config/config.hpp"

namespace parley {

/// `parley serve`: runs until SIGTERM/SIGINT, then drains and returns the exit code (0 = clean).
/// The caller must have blocked SIGTERM and SIGINT in every thread (see main.cpp).
int serve(const config::parley_config& cfg);

/// `parley migrate`: applies pending migrations and returns the exit code.
int migrate(const config::parley_config& cfg);

/// `parley rotate-keys` lives in actors/key_rotation.hpp.

} // namespace parley
