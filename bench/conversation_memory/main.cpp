// Resident memory per active conversation actor: spawns the real conversation actor (the one
// `parley serve` activates per contact) a million times with realistic ids, measures the growth of
// the resident set, then lets them passivate and shows how much memory comes back. For scale it
// also measures a bare CAF stateful actor and the tenant's index entry of a conversation.
//
// Each part runs in a forked child so that one part's freed heap cannot hide another's cost.
//
// Usage: bench_conversation_memory [--actors N] [--idle-timeout S]
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "actors/conversation.hpp"
#include "actors/conversation_index.hpp"
#include "domain/crypto.hpp"
#include "domain/uuid.hpp"
#include "runtime/atoms.hpp"
#include "runtime/metrics.hpp"

using namespace std::chrono_literals;

namespace {

constexpr const char* bench_name = "conversation_memory";
constexpr double target_bytes = 2048;

using steady = std::chrono::steady_clock;

struct options {
  size_t actors = 1000000;
  std::chrono::seconds idle_timeout{5}; ///< waited after the spawns, then the index sweeps
};

/// Resident set size in bytes (/proc/self/statm, second field).
double rss_bytes() {
  std::ifstream in{"/proc/self/statm"};
  long pages_total = 0, pages_resident = 0;
  in >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

double mib(double bytes) {
  return bytes / (1024.0 * 1024.0);
}

double seconds_since(steady::time_point t0) {
  return std::chrono::duration<double>(steady::now() - t0).count();
}

/// A uuid-shaped random string, as tenant and channel ids are.
std::string uuid() {
  auto h = parley::crypto::random_hex(16);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-4" + h.substr(13, 3) + "-a" + h.substr(17, 3) +
         "-" + h.substr(20, 12);
}

/// Waits until `pred` holds or `limit` passes; true if it held.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit) {
  auto until = steady::now() + limit;
  while (!pred()) {
    if (steady::now() > until)
      return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

caf::actor_system_config make_config() {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  cfg.set("logger.console", caf::atom("none"));
  return cfg;
}

// ---- bare CAF actor ---------------------------------------------------------------------------

struct bare_state {
  int64_t value = 0;
  static inline const char* name = "bare";
};

caf::behavior bare_actor(caf::stateful_actor<bare_state>* self) {
  return {[self](int64_t v) { self->state.value = v; }};
}

int bare_part(const options& o) {
  auto cfg = make_config();
  caf::actor_system sys{cfg};
  std::vector<caf::actor> handles;
  handles.reserve(o.actors);
  std::this_thread::sleep_for(200ms);
  auto before = rss_bytes();
  auto t0 = steady::now();
  for (size_t i = 0; i < o.actors; ++i)
    handles.push_back(sys.spawn(bare_actor));
  auto spawn_s = seconds_since(t0);
  std::this_thread::sleep_for(1s);
  auto after = rss_bytes();
  std::printf("bare CAF stateful actor: %.0f bytes each (%zu spawned in %.2f s, %.0f/s; "
              "RSS %.0f -> %.0f MiB)\n",
              (after - before) / static_cast<double>(o.actors), o.actors, spawn_s,
              static_cast<double>(o.actors) / spawn_s, mib(before), mib(after));
  std::fflush(stdout);
  handles.clear(); // no reference left: the actors end
  return 0;
}

// ---- conversation actor -----------------------------------------------------------------------

int conversation_part(const options& o) {
  auto cfg = make_config();
  caf::actor_system sys{cfg};
  parley::metrics::registry registry;
  parley::conversation_deps deps; // writer stays null: nothing is sent to these actors
  deps.idle_timeout = o.idle_timeout;
  deps.active = &registry.get_gauge("parley_conversation_actors_active",
                                    "Conversation actors currently activated");
  deps.passivated = &registry.get_counter("parley_conversation_actors_passivated_total",
                                          "Conversation actors passivated after idling");
  auto active = [&deps] { return static_cast<size_t>(deps.active->value()); };

  // 100 tenants with one channel each, contacts with 12-digit wa_ids; each actor gets its own
  // copies, as the tenant actor passes them.
  std::vector<std::string> tenants, channels;
  for (int i = 0; i < 100; ++i) {
    tenants.push_back(uuid());
    channels.push_back(uuid());
  }
  std::vector<caf::actor> handles;
  handles.reserve(o.actors);
  std::this_thread::sleep_for(200ms);
  auto before = rss_bytes();

  auto t0 = steady::now();
  char wa_id[16];
  for (size_t i = 0; i < o.actors; ++i) {
    std::snprintf(wa_id, sizeof wa_id, "%012llu",
                  491700000000ULL + static_cast<unsigned long long>(i));
    handles.push_back(parley::spawn_conversation(sys, deps, tenants[i % 100], channels[i % 100],
                                                 std::string{wa_id}));
  }
  auto spawn_s = seconds_since(t0);
  auto last_spawn = steady::now();
  bool all_up = wait_until([&] { return active() >= o.actors; }, 30s);
  std::this_thread::sleep_for(1s);
  auto after = rss_bytes();
  double per_actor = (after - before) / static_cast<double>(o.actors);
  std::printf("conversation actor: %.0f bytes each (%zu spawned in %.2f s, %.0f/s; %zu active%s; "
              "RSS %.0f -> %.0f MiB)\n",
              per_actor, o.actors, spawn_s, static_cast<double>(o.actors) / spawn_s, active(),
              all_up ? "" : " - NOT all started", mib(before), mib(after));

  // The tenant keeps every active conversation in its index (actors/conversation_index.hpp):
  // that is part of the cost too, and it is what passivation works from.
  parley::conversation_index index;
  {
    auto idx0 = rss_bytes();
    auto now = sys.clock().now();
    for (size_t i = 0; i < o.actors; ++i) {
      std::snprintf(wa_id, sizeof wa_id, "%012llu",
                    491700000000ULL + static_cast<unsigned long long>(i));
      index.insert({*parley::domain::uuid::parse(channels[i % 100]), wa_id}, handles[i], now);
    }
    auto idx1 = rss_bytes();
    std::printf("tenant index entry per conversation: %.0f bytes (the actor plus its index: %.0f "
                "bytes)\n",
                (idx1 - idx0) / static_cast<double>(o.actors),
                per_actor + (idx1 - idx0) / static_cast<double>(o.actors));
  }
  handles.clear();
  handles.shrink_to_fit();
  std::fflush(stdout);

  // Passivation as the tenant does it (tenant.cpp, sweep_conversations): once idle_timeout has
  // passed, every conversation nothing was routed to is asked to passivate, and ends.
  std::this_thread::sleep_for(o.idle_timeout);
  auto idle = index.idle_since(sys.clock().now() - o.idle_timeout);
  for (auto& conv : idle)
    caf::anon_send(conv, parley::tick_atom::value);
  idle.clear();
  index = parley::conversation_index{}; // the tenant forgets each one on its exit message
  bool gone = wait_until([&] { return active() == 0; }, 60s);
  auto gone_s = seconds_since(last_spawn);
  std::this_thread::sleep_for(500ms);
  auto passivated = rss_bytes();
  malloc_trim(0);
  auto trimmed = rss_bytes();
  std::printf("passivation (idle_timeout %lld s): %s %.1f s after the last spawn; %.0f passivated; "
              "RSS %.0f MiB, after malloc_trim(0) %.0f MiB (before spawning: %.0f MiB)\n",
              static_cast<long long>(o.idle_timeout.count()), gone ? "all gone" : "NOT all gone",
              gone_s, deps.passivated->value(), mib(passivated), mib(trimmed), mib(before));
  std::printf("target: < %.0f bytes per active conversation actor: %s (%.0f bytes)\n", target_bytes,
              per_actor < target_bytes ? "met" : "MISSED", per_actor);
  std::fflush(stdout);
  return gone && all_up ? 0 : 1;
}

/// Runs `part` in a forked child (no threads exist yet in the parent) and returns its status.
template <class F>
int in_child(F part) {
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    return 1;
  }
  if (pid == 0) {
    int rc = 1;
    try {
      rc = part();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_conversation_memory: error: %s\n", e.what());
    }
    std::fflush(stdout);
    _exit(rc);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

} // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--actors" && i + 1 < argc)
      o.actors = std::stoul(argv[++i]);
    else if (a == "--idle-timeout" && i + 1 < argc)
      o.idle_timeout = std::chrono::seconds(std::stol(argv[++i]));
    else if (a.rfind("--benchmark_filter=", 0) == 0) { // what `make bench` passes on
      bool match = true;
      try {
        match = std::regex_search(bench_name, std::regex{a.substr(19)});
      } catch (const std::regex_error&) {
        std::fprintf(stderr, "%s: bad filter regex: %s\n", bench_name, a.c_str());
        return 2;
      }
      if (!match) {
        std::printf("%s: skipped (%s)\n", bench_name, a.c_str());
        return 0;
      }
    } else {
      std::fprintf(stderr, "usage: bench_conversation_memory [--actors N] [--idle-timeout S]\n");
      return 2;
    }
  }
  if (o.actors == 0 || o.idle_timeout.count() <= 0) {
    std::fprintf(stderr,
                 "bench_conversation_memory: --actors and --idle-timeout must be positive\n");
    return 2;
  }
  std::printf("%zu actors, scheduler.max-threads=2, page size %ld\n", o.actors,
              sysconf(_SC_PAGESIZE));
  int bare = in_child([&o] { return bare_part(o); });
  int conv = in_child([&o] { return conversation_part(o); });
  return bare == 0 && conv == 0 ? 0 : 1;
}
