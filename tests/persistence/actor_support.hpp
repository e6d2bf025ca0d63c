#pragma once
// Synchronous request helpers for tests (a scoped_actor may block; actors under test never do).
#include <chrono>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "persistence/messages.hpp"
#include "runtime/errors.hpp"

namespace parley::test {

struct reply {
  bool ok = false;
  nlohmann::json value;
  caf::error err;
  std::chrono::steady_clock::duration took{};

  errc code() const { return code_of(err); }
  std::string message() const { return message_of(err); }
};

template <class... Ts>
reply ask(caf::actor_system& sys, const caf::actor& target, Ts&&... xs) {
  caf::scoped_actor self{sys};
  reply r;
  auto started = std::chrono::steady_clock::now();
  self->request(target, std::chrono::seconds(20), std::forward<Ts>(xs)...)
      .receive(
          [&](nlohmann::json& j) {
            r.ok = true;
            r.value = std::move(j);
          },
          [&](caf::error& e) { r.err = std::move(e); });
  r.took = std::chrono::steady_clock::now() - started;
  return r;
}

inline std::ostream& operator<<(std::ostream& os, const reply& r) {
  if (r.ok)
    return os << "ok " << r.value.dump();
  return os << "error " << api_code(r.code()) << ": " << r.message();
}

} // namespace parley::test
