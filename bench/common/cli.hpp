#pragma once
// The command line every benchmark driving the real `parley serve` shares (CLI11, like the
// server's own): where the binary is, extra server environment, keeping the scratch database,
// and the filter `make bench` passes on.
#include <map>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

namespace parley::bench {

struct server_options {
  std::string parley_bin;                        ///< --parley (default: build/parley)
  std::map<std::string, std::string> server_env; ///< --server-env PARLEY_KEY=VALUE, repeatable
  bool keep_db = false;                          ///< --keep-db
  double drain_wait_s = 60;                      ///< --drain-wait S
  std::optional<std::string> filter;             ///< --benchmark_filter=REGEX (from make bench)
};

/// Adds the options above to `app`, writing into `o`.
void add_server_options(CLI::App& app, server_options& o);

/// Parses, printing help or the error and exiting like CLI11_PARSE (2 on a usage error).
void parse_or_exit(CLI::App& app, int argc, char** argv);

} // namespace parley::bench
