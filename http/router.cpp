#include "http/router.hpp"

#include <algorithm>
#include <optional>
#include <set>
#include <stdexcept>

#include "http/uri.hpp"

namespace parley::http {

namespace {

// "/a/b" -> {"a","b"}; "/" -> {""}; "/a/" -> {"a",""}. Expects a leading '/'.
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  path.remove_prefix(1);
  while (true) {
    auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos)
      break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool valid_capture_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

} // namespace

void router::add(std::string method, std::string pattern, handler h) {
  if (method.empty())
    throw std::invalid_argument("route method must not be empty");
  if (pattern.empty() || pattern.front() != '/')
    throw std::invalid_argument("route pattern must start with '/': " + pattern);
  route r{std::move(method), pattern, {}, std::move(h)};
  std::set<std::string_view> names;
  for (auto seg : split_path(pattern)) {
    if (seg.size() >= 2 && seg.front() == '{' && seg.back() == '}') {
      auto name = seg.substr(1, seg.size() - 2);
      if (!valid_capture_name(name))
        throw std::invalid_argument("route pattern has a bad capture name: " + pattern);
      if (!names.insert(name).second)
        throw std::invalid_argument("route pattern repeats a capture name: " + pattern);
      r.segments.push_back({true, std::string(name)});
    } else {
      if (seg.find_first_of("{}") != std::string_view::npos)
        throw std::invalid_argument("route pattern has a brace inside a literal: " + pattern);
      r.segments.push_back({false, std::string(seg)});
    }
  }
  for (const auto& other : routes_) {
    if (other.method != r.method || other.segments.size() != r.segments.size())
      continue;
    bool same_shape = true;
    for (size_t i = 0; i < r.segments.size() && same_shape; ++i) {
      const auto& a = r.segments[i];
      const auto& b = other.segments[i];
      same_shape = a.capture == b.capture && (a.capture || a.text == b.text);
    }
    if (same_shape)
      throw std::invalid_argument("duplicate route: " + r.method + " " + pattern);
  }
  routes_.push_back(std::move(r));
}

route_match router::match(std::string_view method, std::string_view raw_path) const {
  route_match m;
  if (raw_path.empty() || raw_path.front() != '/')
    return m;
  std::vector<std::optional<std::string>> segs;
  for (auto raw : split_path(raw_path))
    segs.push_back(percent_decode(raw));

  auto matches = [&](const route& r) {
    if (r.segments.size() != segs.size())
      return false;
    for (size_t i = 0; i < segs.size(); ++i) {
      if (!segs[i])
        return false;
      const auto& s = r.segments[i];
      if (s.capture ? segs[i]->empty() : *segs[i] != s.text)
        return false;
    }
    return true;
  };
  // True when `a` is more specific than `b`: a literal beats a capture at the first difference.
  auto more_specific = [](const route& a, const route& b) {
    for (size_t i = 0; i < a.segments.size(); ++i)
      if (a.segments[i].capture != b.segments[i].capture)
        return !a.segments[i].capture;
    return false;
  };

  const route* best = nullptr;
  std::set<std::string> allowed;
  // HEAD is answered by the GET route (RFC 9110 9.3.2; the server sends the headers only) unless
  // a route claims HEAD itself.
  auto pick = [&](std::string_view wanted) {
    for (const auto& r : routes_)
      if (r.method == wanted && matches(r) && (!best || more_specific(r, *best)))
        best = &r;
  };
  pick(method);
  if (!best && method == "HEAD")
    pick("GET");
  for (const auto& r : routes_) {
    if (!matches(r) || r.method == method)
      continue;
    allowed.insert(r.method);
    if (r.method == "GET")
      allowed.insert("HEAD");
  }
  if (best) {
    m.result = route_match::outcome::found;
    m.target = &best->h;
    m.pattern = best->pattern;
    for (size_t i = 0; i < segs.size(); ++i)
      if (best->segments[i].capture)
        m.params.emplace(best->segments[i].text, *segs[i]);
    return m;
  }
  if (!allowed.empty()) {
    m.result = route_match::outcome::method_not_allowed;
    for (const auto& a : allowed) {
      if (!m.allow.empty())
        m.allow += ", ";
      m.allow += a;
    }
  }
  return m;
}

} // namespace parley::http
