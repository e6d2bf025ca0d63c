#pragma once
// One classification of everything a database job can throw, shared by the pool and the writer,
// so both answer the same errc for the same failure.
#include <string>
#include <string_view>

#include "runtime/errors.hpp"

namespace parley::persistence {

/// What went wrong, in terms callers act on.
struct db_failure {
  errc code = errc::internal;
  std::string message;          ///< scrubbed: safe for logs and replies
  bool connection_lost = false; ///< the connection is unusable; drop it
  bool in_doubt = false;        ///< lost during COMMIT: the outcome is unknown
  bool row_specific = false;    ///< caused by the data (constraint, bad value, app_error)
};

/// Classifies the exception currently being handled; call only inside a catch block.
/// `url` is the configured database URL, used to scrub its password from the text.
db_failure classify_current_exception(std::string_view url);

} // namespace parley::persistence
