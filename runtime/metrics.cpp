#include "runtime/metrics.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>

namespace parley::metrics {

namespace {

void atomic_add(std::atomic<double>& target, double v) {
  double cur = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

std::string escape_label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char ch : v) {
    if (ch == '\\' || ch == '"')
      out += '\\', out += ch;
    else if (ch == '\n')
      out += "\\n";
    else
      out += ch;
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  for (char ch : v) {
    if (ch == '\\')
      out += "\\\\";
    else if (ch == '\n')
      out += "\\n";
    else
      out += ch;
  }
  return out;
}

std::string format_number(double v) {
  if (std::isinf(v))
    return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v))
    return "NaN";
  // Shortest text that reads back as the same double: "0.00025", not "0.00025000000000000001".
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc{})
    return "NaN";
  return std::string(buf, end);
}

std::string render_labels(const labels& l, const std::string& extra_key = {},
                          const std::string& extra_value = {}) {
  if (l.empty() && extra_key.empty())
    return {};
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : l) {
    if (!first)
      out += ',';
    first = false;
    out += k + "=\"" + escape_label(v) + "\"";
  }
  if (!extra_key.empty()) {
    if (!first)
      out += ',';
    out += extra_key + "=\"" + escape_label(extra_value) + "\"";
  }
  out += '}';
  return out;
}

} // namespace

void counter::inc(double v) {
  atomic_add(value_, v);
}

void gauge::inc(double v) {
  atomic_add(value_, v);
}

histogram::histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds))
    , buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i)
    buckets_[i].store(0);
}

void histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i])
    ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum_, v);
}

histogram::snapshot histogram::read() const {
  snapshot s;
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

std::vector<double> size_buckets() {
  return {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};
}

registry::series& registry::find_or_add(std::string_view name, std::string_view help, kind type,
                                        const labels& l) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = families_.find(name);
  if (it == families_.end())
    it = families_.emplace(std::string{name}, family{type, std::string{help}, {}}).first;
  else if (it->second.type != type)
    throw std::logic_error("metric " + std::string{name} + " registered with two types");
  for (auto& s : it->second.members)
    if (s->label_set == l)
      return *s;
  auto s = std::make_unique<series>();
  s->label_set = l;
  it->second.members.push_back(std::move(s));
  return *it->second.members.back();
}

counter& registry::get_counter(std::string_view name, std::string_view help, const labels& l) {
  auto& s = find_or_add(name, help, kind::counter, l);
  std::lock_guard<std::mutex> guard{mtx_};
  if (!s.c)
    s.c = std::make_unique<counter>();
  return *s.c;
}

gauge& registry::get_gauge(std::string_view name, std::string_view help, const labels& l) {
  auto& s = find_or_add(name, help, kind::gauge, l);
  std::lock_guard<std::mutex> guard{mtx_};
  if (!s.g)
    s.g = std::make_unique<gauge>();
  return *s.g;
}

histogram& registry::get_histogram(std::string_view name, std::string_view help, const labels& l,
                                   std::vector<double> bounds) {
  auto& s = find_or_add(name, help, kind::histogram, l);
  std::lock_guard<std::mutex> guard{mtx_};
  if (!s.h)
    s.h = std::make_unique<histogram>(std::move(bounds));
  return *s.h;
}

std::string registry::render() const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::string out;
  for (const auto& [name, fam] : families_) {
    out += "# HELP " + name + " " + escape_help(fam.help) + "\n";
    switch (fam.type) {
    case kind::counter:
      out += "# TYPE " + name + " counter\n";
      break;
    case kind::gauge:
      out += "# TYPE " + name + " gauge\n";
      break;
    case kind::histogram:
      out += "# TYPE " + name + " histogram\n";
      break;
    }
    for (const auto& s : fam.members) {
      if (s->c) {
        out += name + render_labels(s->label_set) + " " + format_number(s->c->value()) + "\n";
      } else if (s->g) {
        out += name + render_labels(s->label_set) + " " + format_number(s->g->value()) + "\n";
      } else if (s->h) {
        auto snap = s->h->read();
        const auto& b = s->h->bounds();
        for (size_t i = 0; i < b.size(); ++i)
          out += name + "_bucket" + render_labels(s->label_set, "le", format_number(b[i])) + " " +
                 std::to_string(snap.cumulative[i]) + "\n";
        out += name + "_bucket" + render_labels(s->label_set, "le", "+Inf") + " " +
               std::to_string(snap.count) + "\n";
        out += name + "_sum" + render_labels(s->label_set) + " " + format_number(snap.sum) + "\n";
        out +=
            name + "_count" + render_labels(s->label_set) + " " + std::to_string(snap.count) + "\n";
      }
    }
  }
  return out;
}

} // namespace parley::metrics
