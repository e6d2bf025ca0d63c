// CPU per webhook parse, single-threaded, over the ingest bench's bodies (one inbound text
// message each, ~1.2 KB): parse_webhook as the server runs it (simdjson scan, nlohmann tree),
// against nlohmann::json::parse feeding the same walk (the server's parse before simdjson).
#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "bench/webhook_ingest/payload.hpp"
#include "domain/webhook.hpp"

using namespace parley;

namespace {

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

/// Parses every body `rounds` times; prints microseconds of CPU per parse.
void measure(const char* name, const std::vector<std::string>& bodies, int rounds,
             const std::function<domain::webhook_result(const std::string&)>& parse) {
  size_t messages = 0;
  auto cpu0 = thread_cpu_s();
  for (int r = 0; r < rounds; ++r)
    for (const auto& body : bodies) {
      auto result = parse(body);
      if (auto* batch = std::get_if<domain::webhook_batch>(&result))
        messages += batch->messages.size();
    }
  auto parses = static_cast<double>(bodies.size()) * rounds;
  if (messages != static_cast<size_t>(parses)) {
    std::fprintf(stderr, "%s: %zu messages from %.0f bodies\n", name, messages, parses);
    std::exit(1);
  }
  std::printf("%-44s %8.2f us CPU per webhook\n", name, (thread_cpu_s() - cpu0) / parses * 1e6);
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"CPU per webhook parse: simdjson scan vs nlohmann's parser"};
  int bodies_n = 1000;
  int rounds = 50;
  int alternations = 3;
  std::string filter;
  app.add_option("--bodies", bodies_n, "distinct bodies")->check(CLI::PositiveNumber);
  app.add_option("--rounds", rounds, "passes over the bodies per case")->check(CLI::PositiveNumber);
  app.add_option("--alternations", alternations, "alternating runs of both cases")
      ->check(CLI::PositiveNumber);
  app.add_option("--benchmark_filter", filter, "run only when the bench name matches (make bench)");
  CLI11_PARSE(app, argc, argv);
  if (!filter.empty() && std::string{"webhook_parse"}.find(filter) == std::string::npos)
    return 0;

  bench::webhook_mix mix;
  for (int i = 0; i < 100; ++i)
    mix.phone_number_ids.push_back(std::to_string(100000 + i));
  mix.app_secret = "bench";
  mix.run_tag = "parse";
  bench::webhook_factory factory{mix};
  std::vector<std::string> bodies;
  for (int i = 0; i < bodies_n; ++i)
    bodies.push_back(factory.body(static_cast<uint64_t>(i)));
  std::printf("webhook_parse: %d bodies of ~%zu bytes, %d rounds per case, one thread\n", bodies_n,
              bodies.front().size(), rounds);
  for (int a = 0; a < alternations; ++a) {
    // The document entry point checks the depth on the tree instead of the text: one depth check
    // either way, as the server did before.
    measure("nlohmann::json::parse + the same walk", bodies, rounds, [](const std::string& body) {
      return domain::parse_webhook(nlohmann::json::parse(body));
    });
    measure("parse_webhook (simdjson scan, as served)", bodies, rounds,
            [](const std::string& body) { return domain::parse_webhook(body); });
  }
  return 0;
}
