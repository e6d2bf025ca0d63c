// CPU per request made from outside the actor world, as every HTTP request makes one or more
// (runtime::ask): through the node's relay pool, against the one-shot actor per request Parley
// used before (kept here only as the baseline). The target answers at once, so the figure is the
// bridge's own cost. Requests are kept in flight like concurrent HTTP clients would.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <string>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <sys/resource.h>

#include "runtime/ask.hpp"
#include "runtime/relay_pool.hpp"

using namespace parley;

namespace {

double process_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

caf::behavior successor(caf::event_based_actor*, int) {
  return {[](int x) { return x + 1; }};
}

/// The former runtime::ask: an actor spawned per request, quitting after the answer.
void ask_one_shot(caf::actor_system& sys, const caf::actor& target, std::function<void()> done) {
  sys.spawn(
      [done](caf::event_based_actor* self, const caf::actor& t) {
        self->request(t, std::chrono::seconds(10), 1).then([self, done](int) {
          done();
          self->quit();
        });
      },
      target);
}

/// Runs `n` requests with `in_flight` outstanding at any time; prints requests/s and CPU each.
void measure(const char* name, int n, int in_flight,
             const std::function<void(std::function<void()>)>& issue) {
  std::atomic<int> issued{0};
  std::atomic<int> answered{0};
  std::promise<void> all;
  std::function<void()> next;
  next = [&] {
    if (issued.fetch_add(1) >= n)
      return;
    issue([&] {
      if (answered.fetch_add(1) + 1 == n)
        all.set_value();
      else
        next();
    });
  };
  auto cpu0 = process_cpu_s();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < in_flight; ++i)
    next();
  all.get_future().wait();
  auto wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%-34s %10.0f requests/s %8.2f us CPU per request\n", name, n / wall,
              (process_cpu_s() - cpu0) / n * 1e6);
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"CPU per request from outside the actor world: relay pool vs one-shot actors"};
  int requests = 200000;
  int in_flight = 64;
  int rounds = 3;
  std::string filter;
  app.add_option("--requests", requests, "requests per case")->check(CLI::PositiveNumber);
  app.add_option("--in-flight", in_flight, "requests outstanding at once")
      ->check(CLI::PositiveNumber);
  app.add_option("--rounds", rounds, "alternating rounds of both cases")
      ->check(CLI::PositiveNumber);
  app.add_option("--benchmark_filter", filter, "run only when the bench name matches (make bench)");
  CLI11_PARSE(app, argc, argv);
  if (!filter.empty() && std::string{"ask_relay"}.find(filter) == std::string::npos)
    return 0;

  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2); // parley's default runtime.scheduler_threads
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  auto target = sys.spawn(successor, 0);
  {
    runtime::relay_pool relays{sys, 2}; // as the node: one relay per scheduler thread
    std::printf("ask_relay: %d requests per case, %d in flight, 2 scheduler threads\n", requests,
                in_flight);
    for (int round = 0; round < rounds; ++round) {
      measure("one-shot actor per request", requests, in_flight,
              [&](std::function<void()> done) { ask_one_shot(sys, target, std::move(done)); });
      measure("relay pool (runtime::ask)", requests, in_flight, [&](std::function<void()> done) {
        runtime::ask<int>(
            relays, target, std::chrono::seconds(10), [done](int&) { done(); },
            [](caf::error&) { std::abort(); }, 1);
      });
    }
  }
  caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
  return 0;
}
