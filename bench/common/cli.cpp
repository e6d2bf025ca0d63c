#include "bench/common/cli.hpp"

#include <cstdlib>
#include <vector>

namespace parley::bench {

void add_server_options(CLI::App& app, server_options& o) {
  app.add_option("--parley", o.parley_bin, "parley binary (default: build/parley)");
  app.add_option_function<std::vector<std::string>>(
         "--server-env",
         [&o](const std::vector<std::string>& kvs) {
           for (const auto& kv : kvs) {
             auto eq = kv.find('=');
             if (eq == std::string::npos || kv.rfind("PARLEY_", 0) != 0)
               throw CLI::ValidationError("--server-env", "wants PARLEY_KEY=VALUE, got " + kv);
             o.server_env[kv.substr(0, eq)] = kv.substr(eq + 1);
           }
         },
         "extra environment of the server, PARLEY_KEY=VALUE (repeatable)")
      ->allow_extra_args(false);
  app.add_flag("--keep-db", o.keep_db, "keep the scratch database afterwards");
  app.add_option("--drain-wait", o.drain_wait_s, "seconds to wait for the pipeline to drain")
      ->check(CLI::PositiveNumber);
  app.add_option("--benchmark_filter", o.filter,
                 "run only when the bench name matches (make bench)");
}

void parse_or_exit(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    std::exit(rc == 0 ? 0 : 2);
  }
}

} // namespace parley::bench
