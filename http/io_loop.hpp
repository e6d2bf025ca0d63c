#pragma once
// The loop every Asio thread of the HTTP module runs (server and client).
#include <utility>

#include <boost/asio/io_context.hpp>

#include "runtime/logging.hpp"

namespace parley::http {

/// Runs `ioc` until it is stopped or out of work. An exception escaping a handler is logged and
/// the loop goes on: one bad request must not take the thread (and every connection on it) down.
inline void run_io_loop(boost::asio::io_context& ioc, const log::logger& log, const char* what) {
  for (;;) {
    try {
      ioc.run();
      return;
    } catch (const std::exception& e) {
      log.error(what, {{"error", e.what()}});
    }
  }
}

} // namespace parley::http
