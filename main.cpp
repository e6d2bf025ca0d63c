// parley: the command line. Signals are blocked before any thread starts so that only the
// bootstrap's sigwait sees SIGTERM/SIGINT (graceful drain instead of an abrupt exit).
#include <csignal>
#include <iostream>

#include <CLI/CLI.hpp>

#include "actors/bootstrap.hpp"
#include "actors/key_rotation.hpp"
#include "config/config.hpp"

int main(int argc, char** argv) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  CLI::App app{"Parley: multi-tenant WhatsApp messaging platform"};
  app.set_version_flag("--version", std::string{"parley "} + PARLEY_VERSION);
  app.require_subcommand(1);
  std::string config_file;
  auto* serve = app.add_subcommand("serve", "run a node (HTTP API, webhooks, actors)");
  serve->add_option("--config", config_file,
                    "JSON configuration file (PARLEY_* env vars override it)");
  bool print_config = false;
  serve->add_flag("--print-config", print_config,
                  "print the effective configuration (secrets redacted) and exit");
  auto* migrate = app.add_subcommand("migrate", "apply pending database migrations and exit");
  migrate->add_option("--config", config_file, "JSON configuration file");
  auto* rotate = app.add_subcommand(
      "rotate-keys", "re-encrypt every stored channel secret under the current master key and exit "
                     "(needs security.master_key, its version and the previous keys)");
  rotate->add_option("--config", config_file, "JSON configuration file");
  app.footer("Configuration keys and environment variables: docs/operations.md");
  CLI11_PARSE(app, argc, argv);

  parley::config::parley_config cfg;
  try {
    std::optional<std::string> file;
    if (!config_file.empty())
      file = config_file;
    cfg = parley::config::load(file, parley::config::environment(),
                               *serve ? parley::config::purpose::serve
                                      : parley::config::purpose::migrate);
    if (*rotate && cfg.security.master_key.empty())
      throw parley::config::config_error(
          "security.master_key", "required: rotate-keys re-encrypts under the current master key; "
                                 "set PARLEY_MASTER_KEY");
  } catch (const parley::config::config_error& e) {
    std::cerr << "parley: invalid configuration: " << e.what() << "\n";
    return 2;
  }
  if (*serve && print_config) {
    std::cout << parley::config::redacted_json(cfg) << "\n";
    return 0;
  }
  if (*serve)
    return parley::serve(cfg);
  if (*rotate)
    return parley::rotate_keys(cfg);
  return parley::migrate(cfg);
}
