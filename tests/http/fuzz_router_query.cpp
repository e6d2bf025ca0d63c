// libFuzzer target: split_target, percent_decode, parse_query and router::match must accept any
// bytes without crashing, and agree with each other where their contracts overlap.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "http/router.hpp"
#include "http/uri.hpp"

using namespace parley::http;

namespace {

const router& routes() {
  // Built once per process; the fuzzer calls the entry point millions of times.
  static const router r = [] {
    router rt;
    auto noop = [](request&&, responder) {};
    rt.add("GET", "/", noop);
    rt.add("GET", "/v1/tenants", noop);
    rt.add("POST", "/v1/tenants", noop);
    rt.add("GET", "/v1/tenants/{id}", noop);
    rt.add("PATCH", "/v1/tenants/{id}", noop);
    rt.add("POST", "/v1/tenants/{id}/api-keys", noop);
    rt.add("GET", "/v1/users/me", noop);
    rt.add("GET", "/v1/users/{id}", noop);
    rt.add("GET", "/v1/conversations/{id}/messages", noop);
    rt.add("POST", "/webhooks/whatsapp/{channel_id}", noop);
    return rt;
  }();
  return r;
}

void check(bool ok) {
  if (!ok)
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // First byte picks the method so routing sees both hits and 405s.
  static constexpr std::string_view methods[] = {"GET", "POST", "PATCH", "DELETE", "HEAD"};
  std::string_view method = methods[size ? data[0] % 5 : 0];
  if (size)
    input.remove_prefix(1);

  auto parts = split_target(input);
  check(parts.path.size() + parts.query.size() <= input.size());

  auto plain = percent_decode(parts.path);
  auto spaced = percent_decode(parts.path, true);
  check(plain.has_value() == spaced.has_value());
  if (plain)
    check(plain->size() <= parts.path.size());

  if (auto q = parse_query(parts.query))
    for (const auto& [k, v] : *q)
      check(k.size() + v.size() <= parts.query.size());

  auto m = routes().match(method, parts.path);
  switch (m.result) {
  case route_match::outcome::found:
    check(m.target != nullptr && !m.pattern.empty());
    for (const auto& [name, value] : m.params)
      check(!value.empty());
    break;
  case route_match::outcome::method_not_allowed:
    check(!m.allow.empty() && m.target == nullptr);
    break;
  case route_match::outcome::not_found:
    check(m.target == nullptr);
    break;
  }
  return 0;
}
